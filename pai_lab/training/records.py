"""A job's row: how it reads as a :class:`Job` / :class:`JobDetail`, and the writes its supervisor makes.

The rows are written by two hands: a user's request (:mod:`pai_lab.training.submit`,
:mod:`pai_lab.training.service`) and the job's supervisor (:mod:`pai_lab.training.supervisor`). State
changes go through :func:`transition`, which only moves a job from the states it names, so a stop request
and a finishing rank cannot overwrite each other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session, object_session

from pai_lab.changes import JOB_CHANGES
from pai_lab.errors import NotFound
from pai_lab.store import after_commit, utcnow
from pai_lab.training import spec as specs
from pai_lab.training.schemas import ACTIVE_STATES, Job, JobDetail, JobSpec, Pod, StateChange
from pai_lab.training.tables import JobRow, LogRow, MetricRow

# ---------------------------------------------------------------- views


def job_summary(row: JobRow) -> Job:
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


def job_detail(row: JobRow) -> JobDetail:
    return JobDetail(
        **job_summary(row).model_dump(),
        spec=JobSpec.model_validate(row.spec),
        pods=[Pod.model_validate(p) for p in row.pods or []],
        history=[StateChange.model_validate(h) for h in row.history or []],
        warnings=list(row.warnings or []),
        work_dir=row.work_dir,
        output_dir=row.output_dir,
        model=row.model,
    )


def job_row(session: Session, workspace_id: str, job_id: str) -> JobRow:
    row = session.get(JobRow, job_id)
    if row is None or row.workspace_id != workspace_id:
        raise NotFound(f"no job {job_id!r} in this workspace; `pai dlc get job` lists them", "job_id")
    return row


# ---------------------------------------------------------------- used by the supervisor


def append_state(row: JobRow, state: str, reason: str) -> None:
    now = utcnow()
    row.state = state
    row.reason = reason
    row.history = [*(row.history or []), {"state": state, "at": now.isoformat(), "reason": reason}]
    if state == "Running" and row.started_at is None:
        row.started_at = now
    if state in ("Succeeded", "Failed", "Stopped"):
        row.finished_at = now
    _announce(row, state)


def _announce(row: JobRow, state: str) -> None:
    """Whoever waits on the job in this process hears of the change once it is committed."""
    job_id = row.id

    def announce() -> None:
        JOB_CHANGES.changed(job_id)
        if state in ("Succeeded", "Failed", "Stopped"):
            JOB_CHANGES.forget(job_id)

    session = object_session(row)
    if session is None:
        announce()
    else:
        after_commit(session, announce)


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
    append_state(row, state, reason)
    session.flush()
    return True


def update_pods(session: Session, job_id: str, changes: dict[str, dict]) -> None:
    row = session.get(JobRow, job_id)
    if row is None:
        return
    before = specs.progress_line(row.pods or [])
    pods = [dict(p) for p in row.pods or []]
    for pod in pods:
        pod.update(changes.get(pod["name"], {}))
    row.pods = pods
    session.flush()
    if row.state in ACTIVE_STATES and specs.progress_line(pods) != before:
        # a follower waiting for the progress line to move (`pai dlc submit`) hears of it once committed
        after_commit(session, lambda: JOB_CHANGES.changed(job_id))


def add_logs(session: Session, job_id: str, pod: str, lines: list[tuple]) -> None:
    """A rank's lines: (seq, time, text) or (seq, time, text, stream), stream stdout or stderr."""
    session.add_all(
        [
            LogRow(
                job_id=job_id,
                pod=pod,
                seq=line[0],
                time=datetime.fromtimestamp(line[1], timezone.utc).replace(tzinfo=None),
                line=line[2],
                stream="stderr" if len(line) > 3 and line[3] == "stderr" else "stdout",
            )
            for line in lines
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


def state_of(session: Session, job_id: str) -> str | None:
    return session.scalar(select(JobRow.state).where(JobRow.id == job_id))


def reconcile_after_restart(session: Session, keep: Callable[[JobRow], bool] | None = None) -> list[str]:
    """Jobs left active by a control plane that stopped: their ranks ended with it, so they failed.
    ``keep`` says which active jobs another control plane, still running, supervises (left as they are)."""
    rows = session.scalars(select(JobRow).where(JobRow.state.in_(ACTIVE_STATES))).all()
    rows = [row for row in rows if keep is None or not keep(row)]
    for row in rows:
        ended = "Stopped" if row.state == "Stopping" else "Failed"
        append_state(
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
