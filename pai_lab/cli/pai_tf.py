"""`pai -name tensorflow1120_ext -project algo_public -Dscript=... -Dcluster=...`: the PAI-TF command as the
manual types it (also `pai pai-tf -name ...`). The job is followed as PAI shows it, with its
`ps_job:R/F/T[p%] worker_job:R/F/T[p%]` lines, unless --detach."""

from __future__ import annotations

import time
from datetime import datetime

from pai_lab.cli.base import Result, UsageError
from pai_lab.training.schemas import FOLLOW_WAIT_SECONDS, PaiTfCommand

PARAMS = tuple(k for k in PaiTfCommand.model_fields if k not in ("name", "project"))


def register(sub, add_command) -> None:
    p = add_command(
        sub,
        "pai-tf",
        run,
        "run a PAI-TF job as the manual types it: pai -name tensorflow1120_ext -Dscript=FILE|DIR|TAR.GZ "
        "[-DentryFile=main.py] [-Dcluster=JSON] [-DcheckpointDir=DIR] [-DgpuRequired=N] ...",
    )
    p.add_argument("-name", dest="algorithm", default="tensorflow1120_ext", help="tensorflow1120_ext (or another)")
    p.add_argument("-project", dest="project", default="", help="noted; jobs run in the workspace (-w)")
    p.add_argument("-D", dest="params", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeat)")
    p.add_argument("-w", "--workspace")
    p.add_argument("--detach", action="store_true", help="print the job id and return; do not follow it")
    p.add_argument("--timeout", type=float, default=None, help="stop following after this many seconds")


def command_line(argv: list[str]) -> list[str]:
    """The manual's `pai -name ... ;` as this CLI's `pai pai-tf -name ...` (its trailing `;` dropped)."""
    if not argv or not (argv[0] in ("-name", "-project") or argv[0].startswith(("-name=", "-project="))):
        return argv
    argv = list(argv)
    if argv[-1] == ";":
        argv.pop()
    elif argv[-1].endswith(";"):
        argv[-1] = argv[-1][:-1]
    return ["pai-tf", *argv]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def run(ctx, args) -> Result:
    params: dict[str, str] = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep or key not in PARAMS:
            raise UsageError(f"-D{item}: write -DKEY=VALUE with KEY one of {', '.join(PARAMS)}")
        params[key] = _unquote(value)
    if "script" not in params:
        raise UsageError("pai -name tensorflow: -Dscript is required (a .py file, a folder or a .tar.gz)")
    ws = ctx.workspace(args.workspace)
    extra = {"project": args.project} if args.project else {}
    job = ws.jobs.pai_tf(params.pop("script"), name=args.algorithm, **extra, **params)
    ctx.say(f"[1] JobId: {job.id}")
    ctx.say(f"[1] Logs: pai dlc logs {job.id} worker-0 [--stream stdout|stderr]")
    for warning in job.detail.warnings:
        ctx.say(f"[WARN] {warning}")
    if args.detach:
        ctx.say(f"[1] train: {job.detail.state.lower()}")
        return Result(data=job.detail)
    return follow(ctx, job, args.timeout)


def _state(change) -> str:
    why = f" ({change.reason})" if change.reason and change.state != "Queuing" else ""
    return f"{change.state.lower()}{why}"


def follow(ctx, job, timeout: float | None) -> Result:
    """The job as PAI's console shows it: `[1] train: <state>` when it changes, and a timestamped
    `ps_job:R/F/T[p%] worker_job:R/F/T[p%]` line when its ranks move, until it ends."""
    seen, last = 0, None
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        detail = job.refresh()
        while True:
            news = detail.history[seen:]
            for change in news if detail.state not in ("Succeeded", "Failed", "Stopped") else news[:-1]:
                ctx.say(f"[1] train: {_state(change)}")
            if detail.progress and detail.progress != last and detail.state != "Creating":
                ctx.say(f"[1] train: {datetime.now():%Y-%m-%d %H:%M:%S} {detail.progress}")
                last = detail.progress
            if detail.state in ("Succeeded", "Failed", "Stopped") and news:
                ctx.say(f"[1] train: {_state(news[-1])}")  # the end, after the last progress line
            seen = len(detail.history)
            if detail.state in ("Succeeded", "Failed", "Stopped"):
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                ctx.say(f"[1] train: still {detail.state.lower()}; follow it with `pai dlc get job {job.id}`")
                return Result(data=detail)
            # answered at a state change or a new progress line (not once a second, on the ranks' cores)
            wait = max(0.05, min(FOLLOW_WAIT_SECONDS, left if left is not None else FOLLOW_WAIT_SECONDS))
            detail = job.refresh(history_after=seen, wait=wait, progress=detail.progress)
    except KeyboardInterrupt:
        ctx.say(f"[1] no longer following; the job goes on. Stop it with `pai dlc stop {job.id}`")
        return Result(data=job.detail)
    if detail.model:
        ctx.say(f"[1] Model [{detail.model}] registered from the job's SavedModel")
    return Result(data=detail, exit_code=0 if detail.state == "Succeeded" else 1)
