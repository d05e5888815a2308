"""``dataset.lineage()`` / ``model.lineage()``: which run, step and inputs made an object, shown in a
notebook as a small graph per version (inputs -> run / step -> the object) with a link to each run."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from pai_lab.pipelines.lineage_schemas import LineageRecord

if TYPE_CHECKING:
    from pai_lab.client import WorkspaceClient


def fetch(ws: WorkspaceClient, kind: str, name: str, version: str | int | None = None) -> Lineage:
    params = {"version": str(version)} if version is not None else None
    records = [LineageRecord.model_validate(r) for r in ws._get(f"/lineage/{kind}/{name}", params=params)]
    return Lineage(ws, kind, name, records)


def _value(value) -> str:
    """An input as a short text: a location's dataset/model/uri, else the value."""
    if isinstance(value, dict) and isinstance(value.get("location"), dict):
        loc = value["location"]
        if loc.get("dataset"):
            return f"dataset {loc['dataset']}" + (f":{loc['version']}" if loc.get("version") else "")
        if loc.get("model"):
            return f"model {loc['model']}" + (f":{loc['version']}" if loc.get("version") else "")
        return str(loc.get("uri") or loc)
    return str(value)


class Lineage:
    """The lineage records of one object, newest first; ``records`` holds them, ``runs`` their run ids."""

    def __init__(self, ws: WorkspaceClient, kind: str, name: str, records: list[LineageRecord]):
        self._ws = ws
        self.kind = kind
        self.name = name
        self.records = records

    @property
    def runs(self) -> list[str]:
        return list(dict.fromkeys(r.run_id for r in self.records))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, index: int) -> LineageRecord:
        return self.records[index]

    def to_pandas(self):
        from pai_lab.client import table

        return table(self.records, ["version", "run_id", "run_name", "step", "operator", "created_by", "created_at"])

    def run_link(self, run_id: str) -> str:
        """The run's URL on the server (its REST document: steps, states, outputs)."""
        return self._ws.http.url(self._ws._path(f"/pipelines/runs/{run_id}"))

    def _inputs(self, record: LineageRecord) -> list[str]:
        inputs = record.inputs or {}
        lines = [f"{k} = {_value(v)}" for k, v in (inputs.get("artifacts") or {}).items() if v is not None]
        lines += [f"{k} = {_value(v)}" for k, v in (inputs.get("parameters") or {}).items()]
        return lines

    def _repr_html_(self) -> str:
        title = f"lineage of {escape(self.kind)} <b>{escape(self.name)}</b>"
        if not self.records:
            return f"<div>{title}: <i>not made by a pipeline run</i></div>"
        rows = []
        box = "border:1px solid #999;border-radius:4px;padding:2px 6px;display:inline-block;vertical-align:middle"
        for r in self.records:
            inputs = "<br>".join(escape(line) for line in self._inputs(r)[:12]) or "<i>no inputs</i>"
            what = escape(r.name + (f":{r.version}" if r.version else ""))
            run = (
                f"<a href='{escape(self.run_link(r.run_id))}' target='_blank'>run {escape(r.run_name or r.run_id)}</a>"
                f" <code>{escape(r.run_id)}</code>"
                + (f" ({escape(r.run_status)})" if r.run_status else " (deleted)")
                + f"<br>step <b>{escape(r.step)}</b> <small>{escape(r.operator)}</small>"
            )
            graph = (
                f"<span style='{box};font-size:90%'>{inputs}</span> &rarr; "
                f"<span style='{box};background:#e7f1ff'>{run}</span> &rarr; "
                f"<span style='{box};background:#a3cfbb'>{escape(self.kind)} {what}</span>"
            )
            rows.append(
                f"<tr><td>{escape(r.version) or '-'}</td><td>{graph}</td>"
                f"<td>{escape(r.created_by)}<br><small>{escape(str(r.created_at)[:19])}</small></td></tr>"
            )
        return f"<div>{title}<table><tr><th>version</th><th>made from</th><th>by</th></tr>{''.join(rows)}</table></div>"

    def __repr__(self) -> str:
        made = ", ".join(f"{r.version or '-'} <- {r.run_id}/{r.step}" for r in self.records[:5])
        return f"Lineage({self.kind} {self.name!r}: {made or 'not made by a run'})"
