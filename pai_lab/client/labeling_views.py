"""How a labeling task's figures show in a notebook: progress bars and small tables."""

from __future__ import annotations

import html

from pai_lab.labeling import schemas as sc


def bars(parts: list[tuple[str, int]], total: int) -> str:
    """Horizontal bars, one per count, out of ``total``."""
    out = []
    for name, n in parts:
        width = round(160 * n / total) if total else 0
        out.append(
            f'<div style="display:flex;align-items:center;gap:6px"><span style="width:70px">{html.escape(name)}'
            f'</span><span style="display:inline-block;width:160px;height:9px;background:#eee">'
            f'<span style="display:block;width:{width}px;height:9px;background:#4a90d9"></span></span>'
            f"<span>{n}/{total}</span></div>"
        )
    return "".join(out)


def html_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = "".join(f'<th style="text-align:left">{html.escape(str(k))}</th>' for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(f'<td style="text-align:left">{html.escape("-" if v is None else str(v))}</td>' for v in r.values())
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class TaskStatsView(sc.TaskStats):
    """``task.stats()``: the statistics, shown in a notebook as bars and tables."""

    def _repr_html_(self) -> str:
        parts = [
            ("labeled", self.labeled),
            ("checked", self.checked),
            ("accepted", self.accepted),
            ("skipped", self.skipped),
        ]
        out = [
            "<div><b>progress</b>",
            bars(parts, self.total),
            f"<div>packages left: {self.packages_left}; rejected: {self.rejected}</div>",
        ]
        out.append(html_table([{"state": k, "packages": v} for k, v in self.packages.items() if v]))
        if self.suggested:
            out += [
                "<b>suggestions</b>",
                bars([("kept", self.suggestions_accepted), ("changed", self.suggestions_changed)], self.suggested),
                f"<div>{self.suggested} items had a suggestion</div>",
            ]
        if self.people:
            out += [
                "<b>people</b>",
                html_table(
                    [
                        {"user": p.user, "stage": p.stage, "items": p.items, "items/hour": p.items_per_hour}
                        for p in self.people
                    ]
                ),
            ]
        if self.by_labeler:
            agreement = f" (overall {self.agreement:.1%})" if self.agreement is not None else ""
            out += [
                f"<b>agreement with checkers{agreement}</b>",
                html_table(
                    [
                        {
                            "labeler": a.labeler,
                            "checked": a.checked,
                            "agreed": a.agreed,
                            "accuracy": f"{a.accuracy:.1%}" if a.accuracy is not None else None,
                        }
                        for a in self.by_labeler
                    ]
                ),
            ]
        return "".join(out) + "</div>"
