"""`pai dlc compare JOB_ID JOB_ID ... [--html FILE]`: jobs' final metric values side by side, and the
page with one chart per metric (every job's curve overlaid) that ``ws.jobs.compare`` shows in a notebook."""

from __future__ import annotations

from pathlib import Path

from pai_lab.cli.base import Result, UsageError, render_table


def register_dlc(verbs, add_command, verbs_sub) -> None:
    p = add_command(verbs_sub, "compare", compare, "compare jobs' metrics: final values, and charts with --html")
    p.add_argument("job_ids", metavar="JOB_ID", nargs="+", help="two to ten job ids")
    p.add_argument("--html", metavar="FILE", help="also write the charts and the table to this HTML file")
    p.add_argument("-w", "--workspace")


def compare(ctx, args) -> Result:
    from pai_lab.errors import BadInput

    ws = ctx.workspace(args.workspace)
    try:
        comparison = ws.jobs.compare(args.job_ids)
    except BadInput as exc:
        raise UsageError(f"pai dlc compare: {exc.message}") from None
    frame = comparison.to_pandas()
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    if args.html:
        target = Path(args.html).expanduser()
        try:
            target.write_text(f"<!doctype html><meta charset='utf-8'>{comparison._repr_html_()}", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--html {args.html}: cannot write it: {exc.strerror}") from None
        ctx.say(f"[Info] charts written to {target}")
    columns = list(frame.columns)
    shown = [{k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()} for row in rows]
    return Result(data=rows, text=render_table(shown, columns), frame=True, columns=columns)
