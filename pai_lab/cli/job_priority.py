"""`pai dlc update JOB_ID --priority N`: reorder the queue of waiting jobs (PAI's task-priority
management, an Algorithm O&M right)."""

from __future__ import annotations

from pai_lab.cli.base import Result, UsageError


def register_dlc(verbs, add_command, verbs_sub) -> None:
    text = "change a waiting job's priority (1-9, higher first)"
    p = verbs_sub.add_parser("update", help=text, description=text)
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--priority", type=int, required=True, help="1-9; waiting jobs start highest first")
    p.add_argument("-w", "--workspace")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of a line")
    p.set_defaults(_func=update, _cell_file=None)


def update(ctx, args) -> Result:
    if not 1 <= args.priority <= 9:
        raise UsageError(f"--priority must be from 1 to 9 (higher first), got {args.priority}")
    detail = ctx.workspace(args.workspace).jobs.get(args.job_id).set_priority(args.priority)
    ctx.say(f"[Info] Job [{args.job_id}] priority {detail.priority} ({detail.state})")
    return Result(data=detail)
