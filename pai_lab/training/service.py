"""Training jobs as domain logic: submit, list, show, stop, logs, metrics. No HTTP here.

The rows are written by two hands: these functions (a user's request) and the job's supervisor
(:mod:`pai_lab.training.manager`). State changes go through :func:`transition`, which only moves
a job from the states it names, so a stop request and a finishing rank cannot overwrite each other.
"""

from __future__ import annotations

import re
import secrets
import shlex
import shutil
import string
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, NotFound
from pai_lab.security.paths import Containment
from pai_lab.store import after_commit, utcnow
from pai_lab.training import isolation
from pai_lab.training import spec as specs
from pai_lab.training.images import check_images
from pai_lab.training.runtime import resolve_mounts, split_command
from pai_lab.training.schemas import (
    ACTIVE_STATES,
    STOPPABLE_STATES,
    TERMINAL_STATES,
    Job,
    JobDetail,
    JobSpec,
    LogLine,
    MetricPoint,
    Pod,
    StateChange,
)
from pai_lab.training.tables import JobRow, LogRow, MetricRow
from pai_lab.workspaces import authorize

STOP_ANSWER_SECONDS = 30  # a stop answers once the ranks end, or after this long, still Stopping
STOP_WARNING = "The job you are trying to stop is not in creating/running status, can not be stopped."
KERAS3_HINT = (
    "Keras 3 model.fit does not run under MultiWorkerMirroredStrategy in this TensorFlow "
    '("Attempt to convert a value (PerReplica...)"): use legacy Keras (`import tf_keras as keras`, '
    "pip install tf-keras, or prefix the command with TF_USE_LEGACY_KERAS=1) or a custom training loop"
)
_SHELL_BUILTINS = {
    "cd",
    "export",
    "set",
    "source",
    ".",
    "exec",
    "echo",
    "true",
    "false",
    "test",
    "[",
    "sleep",
    "exit",
    "env",
    "unset",
    "ulimit",
    "umask",
    "trap",
    "wait",
    "eval",
    ":",
}
_GIT_URL = re.compile(r"^(https?://|git@|ssh://|git://)|\.git/?$")


def new_job_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return f"dlc-{utcnow():%Y%m%d%H%M%S}-" + "".join(secrets.choice(alphabet) for _ in range(8))


# ---------------------------------------------------------------- views


def _job(row: JobRow) -> Job:
    s = row.spec
    return Job(
        id=row.id,
        name=row.name,
        kind=row.kind,
        state=row.state,
        workers=s.get("workers", 0),
        ps=s.get("ps", 0),
        chief=bool(s.get("chief")),
        masters=s.get("masters", 0),
        created_by=row.created_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        reason=row.reason or "",
        progress=specs.progress_line(row.pods or []),
        priority=s.get("priority", 1),
    )


def _detail(row: JobRow) -> JobDetail:
    return JobDetail(
        **_job(row).model_dump(),
        spec=JobSpec.model_validate(row.spec),
        pods=[Pod.model_validate(p) for p in row.pods or []],
        history=[StateChange.model_validate(h) for h in row.history or []],
        warnings=list(row.warnings or []),
        work_dir=row.work_dir,
        output_dir=row.output_dir,
        model=row.model,
    )


def _row(session: Session, workspace_id: str, job_id: str) -> JobRow:
    row = session.get(JobRow, job_id)
    if row is None or row.workspace_id != workspace_id:
        raise NotFound(f"no job {job_id!r} in this workspace; `pai dlc get job` lists them", "job_id")
    return row


# ---------------------------------------------------------------- submit


def _is_git_url(source: str) -> bool:
    return bool(_GIT_URL.search(source))


def _resolve_data_sources(session: Session, user: str, workspace: str, names: list[str]) -> tuple[dict, list, list]:
    """Data sources -> (mounts, bucket URIs, resolved sources to snapshot). A dataset with a folder or a
    bucket is also mounted (at /root/data, as in DLC); every source is read through the snapshot."""
    if not names:
        return {}, [], []
    from pai_lab.datasets.records import DEFAULT_MOUNT
    from pai_lab.datasets.service import get_dataset, resolve_source
    from pai_lab.training import data

    resolved = data.resolve(session, user, workspace, names)
    mounts, buckets = {}, []
    folders = [(info["dataset"], info["name"]) for info, _lines in resolved if info["kind"] == "dataset"]
    for name, ref in folders:
        try:
            uri, _options = resolve_source(session, user, workspace, name)
        except BadInput:
            continue  # samples, inline items, labeling exports: no folder to mount
        own_mount = get_dataset(session, user, workspace, name).mount_path
        local = uri.removeprefix("file://")
        target = local if "://" not in local else uri
        if own_mount and own_mount.rstrip("/") != DEFAULT_MOUNT.rstrip("/"):
            mount = own_mount.rstrip("/")  # the data source's own --mount_path, as in DLC
        else:
            mount = "/root/data" if len(names) == 1 else f"/root/data/{ref}"
        mounts[mount] = target
        buckets.append(uri if uri.endswith("/") else uri + "/")
    return mounts, buckets, resolved


def _resolve_code_source(
    session: Session, user: str, workspace: str, ref: str, containment=None
) -> tuple[str, str, str]:
    """A local folder, a git URL, or a registered code source (`pai dlc create code_source`) ->
    (folder or URL, branch, mount path). Folders go through the server's containment policy."""
    if not ref:
        return "", "", "/root/code"
    if _is_git_url(ref):
        return ref, "", "/root/code"
    if containment is not None and ("/" in ref or ref.startswith(("~", "."))):
        folder = containment.resolve(ref, "code_source")  # refused alike whether or not it exists
        if folder.is_dir():
            return str(folder), "", "/root/code"
    elif containment is None and Path(ref).expanduser().is_dir():
        return str(Path(ref).expanduser().resolve()), "", "/root/code"
    from pai_lab.datasets.code_sources import get_code_source

    try:
        source = get_code_source(session, user, workspace, ref)
    except NotFound:
        pass
    else:
        return source.code_repo, source.code_branch, source.mount_path.rstrip("/") or "/root/code"
    if (
        containment is not None
        and "/" not in ref
        and containment.contains(containment.root_dir / ref)
        and (containment.root_dir / ref).is_dir()
    ):  # a folder at the root, named like a code source
        return str(containment.resolve(ref, "code_source")), "", "/root/code"
    raise BadInput(
        f"--code_source {ref!r} is neither a folder on this machine, a git URL, nor a registered code "
        "source (`pai dlc get code_source`)",
        "code_source",
    )


def _read_hyperparameters(path: str) -> list[str]:
    if not path:
        return []
    import fsspec

    try:
        with fsspec.open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except (OSError, ValueError) as exc:
        raise BadInput(f"--hyperParameters: cannot read {path!r}: {exc}", "hyperParameters") from None
    return specs.parse_hyperparameters(text, f"hyperParameters file {path}")


def keras_warnings(spec: JobSpec, command: str) -> list[str]:
    """Spot a script that will hit the Keras 3 + MultiWorkerMirroredStrategy failure, before launch."""
    if spec.workers + spec.masters + int(spec.chief) < 2 or "TF_USE_LEGACY_KERAS=1" in command:
        return []
    found = []
    for token in re.findall(r"[^\s'\"]+\.py\b", command):
        try:
            source = Path(token).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        legacy = "tf_keras" in source or "TF_USE_LEGACY_KERAS" in source
        keras3 = re.search(r"^\s*(import keras\b|from keras\b)|tf\.keras\.|tensorflow\.keras", source, re.MULTILINE)
        if "MultiWorkerMirroredStrategy" in source and ".fit(" in source and keras3 and not legacy:
            found.append(f"{Path(token).name}: {KERAS3_HINT}")
    return found


def _check_command_locally(command: str, cwd: str, sandbox=None) -> None:
    """On a local cluster the workers share this machine: a missing program or script is caught now, and
    a script a sandboxed rank could not see (``sandbox``: the containment policy it follows)."""
    _assignments, argv = split_command(command)
    if argv is None:
        return
    program = argv[0]
    if program in _SHELL_BUILTINS:
        return
    if "/" in program:
        exists = (Path(cwd) / program).exists()
    else:
        import os
        import sys

        path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        exists = shutil.which(program, path=path) is not None
    if not exists:
        raise BadInput(
            f"command: {program!r} is not found on the workers' PATH; install it or give its full path", "command"
        )
    if Path(program).name.startswith("python") and len(argv) > 1 and argv[1].endswith(".py"):
        script = Path(cwd) / argv[1]
        if not script.exists():
            raise BadInput(
                f"command: the script {argv[1]!r} does not exist (looked in {cwd}); check the path "
                "or give --code_source",
                "command",
            )
        if sandbox is not None and not sandbox.contains(script):
            seen = ", ".join(str(r) for r in sandbox.all)
            raise BadInput(
                f"command: the script {argv[1]!r} lies outside the folders a rank sees in this "
                f"server's sandbox ({seen}); move it there or give --code_source",
                "command",
            )


def submit_job(session: Session, platform, user: str, workspace: str, spec: JobSpec) -> JobDetail:
    """Check and record a job (state Creating); once the record commits, the manager launches it."""
    from pai_lab.training.manager import get_manager  # the manager builds on this module

    manager = get_manager(platform)
    local_cluster = manager.local
    access = authorize(session, user, workspace, "job.submit")
    # the same checks as the CLI, for REST callers too
    spec = specs.build_spec(
        spec.model_dump(), max_ranks=platform.settings.get("max_job_ranks") or specs.DEFAULT_MAX_RANKS
    )
    check_images(spec.model_dump())  # an environment the ranks would not run in is refused, not ignored
    if spec.kind == "pytorchjob":
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise BadInput(
                "pytorchjob needs PyTorch on the workers: `pip install torch` there, or submit a tfjob", "kind"
            )
    containment = Containment.from_platform(platform)
    if spec.checkpointDir and "://" not in spec.checkpointDir:  # ranks write there: never the state folder
        containment.resolve(spec.checkpointDir, "checkpointDir", must_exist=False, writing=True)
    if spec.hyperParameters:
        spec = spec.model_copy(update={"hyperParameters": containment.check(spec.hyperParameters, "hyperParameters")})
    code, branch, code_mount = _resolve_code_source(session, user, workspace, spec.code_source.strip(), containment)
    mounts, buckets, sources = _resolve_data_sources(session, user, workspace, spec.data_sources)
    sandbox = _sandbox_for(session, platform.settings) if local_cluster else None
    try:
        job = _record_job(
            session,
            platform,
            user,
            access,
            spec,
            code,
            branch,
            code_mount,
            mounts,
            buckets,
            sources,
            local_cluster,
            sandbox,
        )
    finally:
        for _info, lines in sources:
            lines.close()  # spooled lines: copied into the job's folder, or dropped with a refused job
    # a supervisor reads the job's row: it starts only once the row is there for it to read
    after_commit(session, lambda: manager.launch(job.id))
    return job


def _sandbox_for(session: Session, settings: dict) -> str | None:
    """The bubblewrap binary local ranks run in, when this server's users call for one (None: no sandbox)."""
    from pai_lab.workspaces.tables import MemberRow

    users = session.scalar(select(func.count(func.distinct(MemberRow.username)))) or 0
    if not isolation.sandbox_required(settings, users):
        return None
    return isolation.check_sandbox_available(settings, users)


def _record_job(
    session: Session,
    platform,
    user: str,
    access,
    spec: JobSpec,
    code: str,
    branch: str,
    code_mount: str,
    mounts: dict,
    buckets: list,
    sources: list,
    local_cluster: bool,
    sandbox: str | None,
) -> JobDetail:
    hyper = _read_hyperparameters(spec.hyperParameters)
    job_id = new_job_id()
    work_dir = platform.state_dir / "jobs" / job_id
    output_dir = work_dir / "output"
    checkpoint_dir = spec.checkpointDir or str(output_dir)
    code_dir = str(work_dir / "code") if code else ""
    launch = {
        "job_id": job_id,
        "kind": spec.kind,
        "command": spec.command,
        "mounts": mounts,
        "buckets": buckets,
        "work_dir": str(platform.root_dir),
        "job_dir": str(work_dir),
        "output_dir": str(output_dir),
        "model_dir": str(output_dir / "model"),
        "checkpoint_dir": checkpoint_dir,
        "code_source": code,
        "code_dir": code_dir,
        "code_branch": branch,
        "code_mount": code_mount,
        "hyperparameters": hyper,
        "user_flags": shlex.split(spec.userDefinedParameters) if spec.userDefinedParameters else [],
        "thirdparty_libs": spec.thirdparty_libs,
    }
    if sandbox:
        launch["sandbox"] = isolation.sandbox_plan(platform, launch, sandbox)
    seen_code = code if code and not _is_git_url(code) else code_dir or str(platform.root_dir)
    resolved = resolve_mounts(spec.command, {**mounts, code_mount: seen_code})
    if local_cluster and not (code and _is_git_url(code)):
        _check_command_locally(
            resolved,
            seen_code if code else str(platform.root_dir),
            Containment.from_platform(platform) if sandbox else None,
        )
    warnings = keras_warnings(spec, resolved)
    pods = [
        Pod(name=plan.pod(job_id), role=plan.role, index=plan.index).model_dump() for plan in specs.plan_ranks(spec)
    ]
    if sources:
        from pai_lab.training import data

        launch["data_file"] = str(data.write_snapshot(work_dir / "data", sources))
    now = utcnow()
    row = JobRow(
        id=job_id,
        workspace_id=access.workspace_id,
        name=spec.name,
        kind=spec.kind,
        state="Creating",
        reason="",
        spec=spec.model_dump(),
        launch=launch,
        pods=pods,
        history=[{"state": "Creating", "at": now.isoformat(), "reason": ""}],
        warnings=warnings,
        work_dir=str(work_dir),
        output_dir=str(output_dir),
        created_by=user,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return _detail(row)


# ---------------------------------------------------------------- read


def list_jobs(
    session: Session, user: str, workspace: str, *, state: str | None = None, name: str | None = None, limit: int = 200
) -> list[Job]:
    access = authorize(session, user, workspace, "job.read")
    query = select(JobRow).where(JobRow.workspace_id == access.workspace_id)
    if state:
        query = query.where(JobRow.state == state)
    if name:
        query = query.where(JobRow.name.contains(name))
    rows = session.scalars(query.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)).all()
    return [_job(r) for r in rows]


def get_job(session: Session, user: str, workspace: str, job_id: str) -> JobDetail:
    access = authorize(session, user, workspace, "job.read")
    return _detail(_row(session, access.workspace_id, job_id))


def _as_naive_utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def job_logs(
    session: Session,
    user: str,
    workspace: str,
    job_id: str,
    *,
    pod: str | None = None,
    max_events_num: int = 2000,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    after: int | None = None,
) -> list[LogLine]:
    """A pod's lines in order: the last ``max_events_num`` of the window (default: the last 7 days)."""
    access = authorize(session, user, workspace, "job.read")
    row = _row(session, access.workspace_id, job_id)
    pods = [p["name"] for p in row.pods or []]
    if pod is not None and pod not in pods:
        raise NotFound(f"job {job_id} has no pod {pod!r}; its pods are: {', '.join(pods)}", "pod")
    end = _as_naive_utc(end_time) or utcnow() + timedelta(seconds=1)
    start = _as_naive_utc(start_time) or end - timedelta(days=7)
    if start > end:
        raise BadInput("--start_time is after --end_time", "start_time")
    query = select(LogRow).where(LogRow.job_id == job_id, LogRow.time >= start, LogRow.time <= end)
    if pod is not None:
        query = query.where(LogRow.pod == pod)
    if after is not None:
        query = query.where(LogRow.id > after)
    rows = session.scalars(query.order_by(LogRow.id.desc()).limit(max_events_num)).all()
    rows = sorted(rows, key=(lambda r: r.seq) if pod is not None else (lambda r: r.id))
    return [LogLine(id=r.id, pod=r.pod, seq=r.seq, time=r.time, line=r.line) for r in rows]


def job_metrics(
    session: Session, user: str, workspace: str, job_id: str, *, pod: str | None = None, after: int | None = None
) -> list[MetricPoint]:
    access = authorize(session, user, workspace, "job.read")
    _row(session, access.workspace_id, job_id)
    query = select(MetricRow).where(MetricRow.job_id == job_id)
    if pod:
        query = query.where(MetricRow.pod == pod)
    if after is not None:
        query = query.where(MetricRow.id > after)
    rows = session.scalars(query.order_by(MetricRow.id)).all()
    return [MetricPoint(id=r.id, pod=r.pod, step=r.step, time=r.time, name=r.name, value=r.value) for r in rows]


# ---------------------------------------------------------------- stop / delete


def request_stop(session: Session, user: str, workspace: str, job_id: str) -> JobDetail:
    """Move a Creating/Queuing/Running job to Stopping; the supervisor ends its ranks."""
    access = authorize(session, user, workspace, "job.read")
    row = _row(session, access.workspace_id, job_id)
    authorize(session, user, workspace, "job.stop", owner=row.created_by)
    if row.state not in STOPPABLE_STATES:
        raise Conflict(STOP_WARNING, "job_id", code="not_stoppable")
    _append_state(row, "Stopping", f"stopped by {user}")
    session.flush()
    return _detail(row)


def stop_job(
    platform, user: str, workspace: str, job_id: str, *, transaction=None, wait: float = STOP_ANSWER_SECONDS
) -> JobDetail:
    """Stop a Creating/Queuing/Running job and answer once its ranks have ended; after ``wait`` s, the job
    as it stands (still Stopping). ``transaction`` opens the caller's store transactions (a request's, so
    its operation-log entry commits with the stop); the store's by default."""
    from pai_lab.training.manager import get_manager  # the manager builds on this module

    transaction = transaction or platform.store.transaction
    with transaction() as s:
        request_stop(s, user, workspace, job_id)
    if not get_manager(platform).request_stop(job_id):  # no supervisor to settle the state: settle it here
        with transaction() as s:
            transition(s, job_id, "Stopped", "stopped by request", only_from=("Stopping",))
    deadline = time.monotonic() + wait
    while True:
        with transaction() as s:
            job = get_job(s, user, workspace, job_id)
        if job.state in TERMINAL_STATES or time.monotonic() >= deadline:
            return job
        time.sleep(0.2)


def delete_job(session: Session, user: str, workspace: str, job_id: str) -> None:
    access = authorize(session, user, workspace, "job.read")
    row = _row(session, access.workspace_id, job_id)
    authorize(session, user, workspace, "job.delete", owner=row.created_by)
    if row.state in ACTIVE_STATES:
        raise Conflict(f"job {job_id} is {row.state}; stop it first (`pai dlc stop {job_id}`)", "job_id")
    session.execute(delete(LogRow).where(LogRow.job_id == job_id))
    session.execute(delete(MetricRow).where(MetricRow.job_id == job_id))
    session.delete(row)
    session.flush()
    shutil.rmtree(row.work_dir, ignore_errors=True)


def refuse_workspace_delete_with_active_jobs(session: Session, workspace_id: str) -> None:
    count = session.scalar(
        select(func.count())
        .select_from(JobRow)
        .where(JobRow.workspace_id == workspace_id, JobRow.state.in_(ACTIVE_STATES))
    )
    if count:
        raise Conflict(f"{count} job(s) still run in this workspace; stop them first (`pai dlc get job`)", "workspace")


# ---------------------------------------------------------------- used by the supervisor


def _append_state(row: JobRow, state: str, reason: str) -> None:
    now = utcnow()
    row.state = state
    row.reason = reason
    row.history = [*(row.history or []), {"state": state, "at": now.isoformat(), "reason": reason}]
    if state == "Running" and row.started_at is None:
        row.started_at = now
    if state in ("Succeeded", "Failed", "Stopped"):
        row.finished_at = now


def transition(
    session: Session, job_id: str, state: str, reason: str = "", *, only_from: tuple[str, ...] | None = None
) -> bool:
    """Set the job's state unless it has moved elsewhere meanwhile; False if it had."""
    row = session.get(JobRow, job_id, with_for_update=True)
    if row is None or (only_from is not None and row.state not in only_from):
        return False
    if state == "Stopped" and row.state == "Stopping" and row.reason:
        reason = row.reason  # keep who stopped it
    if row.state == state and row.reason == reason:
        return True
    _append_state(row, state, reason)
    session.flush()
    return True


def update_pods(session: Session, job_id: str, changes: dict[str, dict]) -> None:
    row = session.get(JobRow, job_id)
    if row is None:
        return
    pods = [dict(p) for p in row.pods or []]
    for pod in pods:
        pod.update(changes.get(pod["name"], {}))
    row.pods = pods
    session.flush()


def add_logs(session: Session, job_id: str, pod: str, lines: list[tuple[int, float, str]]) -> None:
    session.add_all(
        [
            LogRow(
                job_id=job_id,
                pod=pod,
                seq=seq,
                time=datetime.fromtimestamp(at, timezone.utc).replace(tzinfo=None),
                line=text,
            )
            for seq, at, text in lines
        ]
    )


def add_metrics(session: Session, job_id: str, pod: str, points: list[tuple[int, float, dict]]) -> None:
    session.add_all(
        [
            MetricRow(
                job_id=job_id,
                pod=pod,
                step=step,
                time=datetime.fromtimestamp(at, timezone.utc).replace(tzinfo=None),
                name=name,
                value=value,
            )
            for step, at, values in points
            for name, value in values.items()
        ]
    )


def reconcile_after_restart(session: Session) -> list[str]:
    """Jobs left active by a control plane that stopped: their ranks ended with it, so they failed."""
    rows = session.scalars(select(JobRow).where(JobRow.state.in_(ACTIVE_STATES))).all()
    for row in rows:
        ended = "Stopped" if row.state == "Stopping" else "Failed"
        _append_state(
            row,
            ended,
            f"the control plane restarted while the job was {row.state}; its ranks were "
            "ended with it. Submit it again to rerun",
        )
        row.pods = [
            {**p, "state": p["state"] if p["state"] in ("Succeeded", "Failed", "Stopped") else "Failed"}
            for p in row.pods or []
        ]
    session.flush()
    return [r.id for r in rows]


def set_model(session: Session, job_id: str, model_ref: str) -> None:
    session.execute(update(JobRow).where(JobRow.id == job_id).values(model=model_ref))
