"""`pai dlc submit tfjob|tf|pytorchjob`, `pai dlc stop JOB`, `pai dlc logs JOB POD`, `pai dlc get job [ID]`."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import uuid
from datetime import datetime, timezone

from pai_lab.cli.base import (
    Result,
    UsageError,
    record_result,
    render_table,
    rows_result,
)
from pai_lab.errors import Conflict
from pai_lab.training.schemas import FOLLOW_WAIT_SECONDS

STOP_WARNING = "[WARN] The job you are trying to stop is not in creating/running status, can not be stopped."
JOB_COLUMNS = ["id", "name", "state", "workers", "ps", "chief", "progress", "created_by", "created_at", "reason"]
JOB_HEADERS = ["JobId", "Name", "Status", "Workers", "PS", "Chief", "Progress", "UserId", "GmtCreateTime", "Reason"]
TERMINAL = ("Succeeded", "Failed", "Stopped")


def _spec_flags(parser, kind: str) -> None:
    from pai_lab.training.schemas import JobSpec

    roles = {"pytorchjob": ("worker", "master"), "predictjob": ("worker",)}.get(
        kind, ("worker", "ps", "chief", "master")
    )
    counts = {"worker": "workers", "ps": "ps", "master": "masters"}
    parser.add_argument("--name", help="job name (required; several jobs may share it)")
    if kind == "predictjob":
        parser.add_argument("--model", help=JobSpec.model_fields["model"].description)
        parser.add_argument("--command", help="start command of every rank (default: pai_lab's batch prediction)")
    else:
        parser.add_argument("--command", help="start command of every rank (required)")
    for role in roles:
        if role in counts:
            parser.add_argument(f"--{counts[role]}", help=f"number of {role} ranks (default 0)")
        parser.add_argument(f"--{role}_image", help="an ImageUrl from `pai dlc get images` (default: this Python)")
        parser.add_argument(f"--{role}_spec", help="ECS type (ecs.g6.4xlarge) or cpu=N,memory=SIZE,gpu=N")
    if kind == "tfjob":
        parser.add_argument("--chief", help="true: add a TensorFlow chief rank (default false)")
    for key in (
        "code_source",
        "data_sources",
        "thirdparty_libs",
        "tables",
        "outputs",
        "hyperParameters",
        "userDefinedParameters",
        "checkpointDir",
        "maxHungTimeBeforeGCInSeconds",
        "priority",
    ):
        parser.add_argument(f"--{key}", help=JobSpec.model_fields[key].description)
    parser.add_argument("--job_file", help="a file of key=value lines; its values win over flags")
    parser.add_argument("--thirdparty_lib_dir", help="folder with a requirements.txt to install per rank")
    parser.add_argument("-w", "--workspace")
    parser.add_argument("--detach", action="store_true", help="print the job id and return; do not follow it")
    parser.add_argument("--timeout", type=float, default=None, help="stop following after this many seconds")


def register_dlc(verbs, add_command, verbs_sub) -> None:
    for kind, aliases, what in (
        ("tfjob", ["tf"], "a TensorFlow training job"),
        ("pytorchjob", ["pytorch"], "a PyTorch training job"),
        ("predictjob", ["predict"], "a batch prediction: ranks share --tables through a WorkQueue, write --outputs"),
    ):
        p = add_command(
            verbs["submit"],
            kind,
            submit,
            f"submit {what}",
            cell_file="--job_file",
            aliases=aliases,
        )
        p.set_defaults(_kind=kind)
        _spec_flags(p, kind)

    stop_parser = verbs["stop"]
    stop_parser.add_argument("job_id", metavar="JOB_ID")
    stop_parser.add_argument("--force", action="store_true", help="stop without asking")
    stop_parser.add_argument("-w", "--workspace")
    stop_parser.add_argument("--json", action="store_true", help="print JSON for machines instead of a table")
    stop_parser.set_defaults(_func=stop, _cell_file=None)

    logs_parser = verbs["logs"]
    logs_parser.add_argument("job_id", metavar="JOB_ID")
    logs_parser.add_argument("pod_id", metavar="POD_ID", help="<jobId>-worker-0, or just worker-0")
    logs_parser.add_argument("--max_events_num", type=int, default=2000, help="most lines to show (default 2000)")
    logs_parser.add_argument("--start_time", help="RFC3339, e.g. 2020-11-08T16:00:00Z (default: 7 days ago)")
    logs_parser.add_argument("--end_time", help="RFC3339 (default: now)")
    logs_parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the job ends")
    logs_parser.add_argument(
        "--stream", choices=("stdout", "stderr"), help="only the pod's StdOut or its StdErr (default: both)"
    )
    logs_parser.add_argument("-w", "--workspace")
    logs_parser.add_argument("--json", action="store_true", help="print JSON for machines instead of lines")
    logs_parser.set_defaults(_func=logs, _cell_file=None)

    p = add_command(verbs["get"], "job", get_job, "list jobs, or show one (a local addition to dlc)", aliases=["jobs"])
    p.add_argument("job_id", nargs="?", metavar="JOB_ID")
    p.add_argument("--status", help="only jobs in this state")
    p.add_argument("--display_name", help="only jobs whose name contains this")
    p.add_argument("-w", "--workspace")


def _ascii_table(headers: list[str], row: list[str]) -> str:
    widths = [max(len(h), len(v)) for h, v in zip(headers, row)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([rule, line(headers), rule, line(row), rule])


def _values(args) -> dict:
    from pai_lab.training import spec as specs

    keys = [k for k in specs.FILE_KEYS if hasattr(args, k)]
    flags = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    file_values = {}
    if args.job_file:
        try:
            with open(args.job_file, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read --job_file {args.job_file!r}: {exc.strerror}") from None
        file_values = specs.parse_job_file(text, f"job file {args.job_file}")
    values = specs.merge(flags, file_values)
    if args.thirdparty_lib_dir:
        requirements = os.path.join(args.thirdparty_lib_dir, "requirements.txt")
        try:
            with open(requirements, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            raise UsageError(
                f"--thirdparty_lib_dir: no readable requirements.txt in {args.thirdparty_lib_dir!r}"
            ) from None
        extra = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        current = values.get("thirdparty_libs") or ""
        values["thirdparty_libs"] = ",".join([*(c for c in current.split(",") if c.strip()), *extra])
    return values


def submit(ctx, args) -> Result:
    from pai_lab.training import spec as specs

    kind = args._kind
    if kind == "pytorchjob" and importlib.util.find_spec("torch") is None:
        raise UsageError(
            "pai dlc submit pytorchjob: PyTorch is not installed here; `pip install torch` (on the "
            "workers too) or submit a tfjob"
        )
    values = _values(args)  # an *_image the server has no environment for is its 400, naming the flag
    spec = specs.build_spec(values, kind)
    ws = ctx.workspace(args.workspace)
    job = ws.jobs.submit(**{k: v for k, v in spec.model_dump().items() if k != "kind"}, kind=kind)
    ctx.say(_ascii_table(["JobId", "RequestId"], [job.id, str(uuid.uuid4()).upper()]))
    for warning in job.detail.warnings:
        ctx.say(f"[WARN] {warning}")
    if args.detach:
        ctx.say(f"[Info] Job [{job.id}] is [{job.detail.state}]")
        return Result(data=job.detail)
    return _follow(ctx, job, args.timeout)


def _follow(ctx, job, timeout: float | None) -> Result:
    """Print the job's state and PAI-TF progress lines as they change, until it ends."""
    seen, last_progress = 0, None
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        detail = job.detail  # as the submission answered: the first look costs no request
        while True:
            # Every state the job passed through since the last look, even one shorter than a poll.
            for change in detail.history[seen:]:
                why = f": {change.reason}" if change.state == "Queuing" and change.reason else ""
                ctx.say(f"[Info] Job [{job.id}] is [{change.state}]{why}")
            seen = len(detail.history)
            # every rank has ended but the job's end is not written yet: its line comes after the end, as ever
            ending = detail.state not in TERMINAL and all(p.state in TERMINAL for p in detail.pods)
            if detail.progress and detail.progress != last_progress and detail.state != "Creating" and not ending:
                stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
                ctx.say(f"[Info] {stamp} {detail.progress}")
                last_progress = detail.progress
            if detail.state in TERMINAL:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                ctx.say(f"[Info] still {detail.state}; follow it with `pai dlc get job {job.id}`")
                return Result(data=detail)
            # a long poll, answered at a state change or a new progress line, else after FOLLOW_WAIT_SECONDS: a
            # running job is not asked about once a second, on the cores its ranks train on
            wait = max(0.05, min(FOLLOW_WAIT_SECONDS, left if left is not None else FOLLOW_WAIT_SECONDS))
            detail = job.refresh(history_after=seen, wait=wait, progress=detail.progress)
    except KeyboardInterrupt:
        ctx.say(f"[Info] no longer following; the job goes on. Stop it with `pai dlc stop {job.id}`")
        return Result(data=job.detail)
    if detail.state != "Succeeded":
        ctx.say(f"[WARN] {detail.reason}")
    elif detail.model:
        ctx.say(f"[Info] Model [{detail.model}] registered from the job's SavedModel")
    return Result(data=detail, exit_code=0 if detail.state == "Succeeded" else 1)


def stop(ctx, args) -> Result:
    ws = ctx.workspace(args.workspace)
    if not args.force and sys.stdin.isatty() and ctx.interactive:
        answer = input(f"Are you sure to stop the job [{args.job_id}]? [Y/n] ").strip().lower()
        if answer not in ("", "y", "yes"):
            ctx.say("[Info] not stopped")
            return Result(exit_code=1)
    try:
        detail = ws.jobs.get(args.job_id).stop()
    except Conflict as exc:
        if exc.code == "not_stoppable":
            ctx.say(STOP_WARNING)
            return Result(data={"job_id": args.job_id, "stopped": False}, exit_code=1)
        raise
    ctx.say(f"[INFO] Job [{args.job_id}] has been stopped.")
    return Result(data=detail)


def _time(value: str | None, flag: str):
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not an RFC3339 time such as 2020-11-08T16:00:00Z") from None


def _stamp(at: datetime) -> str:
    return at.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def logs(ctx, args) -> Result:
    if args.max_events_num < 1:
        raise UsageError("--max_events_num must be 1 or more")
    ws = ctx.workspace(args.workspace)
    job = ws.jobs.get(args.job_id)
    pod = job.pod_name(args.pod_id)
    start, end = _time(args.start_time, "--start_time"), _time(args.end_time, "--end_time")
    lines = job.log_lines(pod, args.max_events_num, start, end, stream=args.stream)
    for line in lines:
        ctx.say(f"{_stamp(line.time)} {line.line}")
    cursor = lines[-1].id if lines else None
    while args.follow and not job.done:
        time.sleep(1.0)
        new = job.log_lines(pod, 10000, after=cursor, stream=args.stream)
        for line in new:
            ctx.say(f"{_stamp(line.time)} {line.line}")
        lines += new
        cursor = new[-1].id if new else cursor
    return Result(data=lines)


def get_job(ctx, args) -> Result:
    ws = ctx.workspace(args.workspace)
    if args.job_id:
        detail = ws.jobs.get(args.job_id).detail
        result = record_result(
            detail,
            [
                "id",
                "name",
                "kind",
                "state",
                "reason",
                "progress",
                "workers",
                "ps",
                "chief",
                "masters",
                "created_by",
                "created_at",
                "started_at",
                "finished_at",
                "output_dir",
                "model",
            ],
        )
        pods = render_table(
            detail.pods,
            ["name", "state", "host", "port", "pid", "gpus", "exit_code"],
            ["PodId", "Status", "Host", "Port", "Pid", "GPUs", "ExitCode"],
        )
        result.text = f"{result.text}\n\n{pods}"
        return result
    jobs = ws.jobs.list(state=args.status, name=args.display_name)
    result = rows_result(jobs, JOB_COLUMNS, JOB_HEADERS)
    result.text += f"\nTotal  {len(jobs)}"
    return result
