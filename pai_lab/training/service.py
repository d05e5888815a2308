"""Training jobs a user holds: list, show, logs, metrics, stop, delete. No HTTP here.

Submitting lives in :mod:`pai_lab.training.submit`; how a row reads, and the supervisor's writes, in
:mod:`pai_lab.training.records`.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, NotFound
from pai_lab.store import utcnow
from pai_lab.training.records import append_state, job_detail, job_row, job_summary, transition
from pai_lab.training.schemas import (
    ACTIVE_STATES,
    STOPPABLE_STATES,
    TERMINAL_STATES,
    Job,
    JobDetail,
    LogLine,
    MetricPoint,
)
from pai_lab.training.tables import JobRow, LogRow, MetricRow
from pai_lab.workspaces import authorize

STOP_ANSWER_SECONDS = 30  # a stop answers once the ranks end, or after this long, still Stopping
STOP_WARNING = "The job you are trying to stop is not in creating/running status, can not be stopped."


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
    return [job_summary(r) for r in rows]


def get_job(session: Session, user: str, workspace: str, job_id: str) -> JobDetail:
    access = authorize(session, user, workspace, "job.read")
    return job_detail(job_row(session, access.workspace_id, job_id))


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
    stream: str | None = None,
) -> list[LogLine]:
    """A pod's lines in order: the last ``max_events_num`` of the window (default: the last 7 days);
    ``stream``: only its stdout or only its stderr, as PAI's Logview shows them apart."""
    access = authorize(session, user, workspace, "job.read")
    row = job_row(session, access.workspace_id, job_id)
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
    if stream is not None:
        query = query.where(LogRow.stream == stream)
    rows = session.scalars(query.order_by(LogRow.id.desc()).limit(max_events_num)).all()
    rows = sorted(rows, key=(lambda r: r.seq) if pod is not None else (lambda r: r.id))
    return [LogLine(id=r.id, pod=r.pod, seq=r.seq, time=r.time, line=r.line, stream=r.stream) for r in rows]


def job_metrics(
    session: Session, user: str, workspace: str, job_id: str, *, pod: str | None = None, after: int | None = None
) -> list[MetricPoint]:
    access = authorize(session, user, workspace, "job.read")
    job_row(session, access.workspace_id, job_id)
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
    row = job_row(session, access.workspace_id, job_id)
    authorize(session, user, workspace, "job.stop", owner=row.created_by)
    if row.state not in STOPPABLE_STATES:
        raise Conflict(STOP_WARNING, "job_id", code="not_stoppable")
    append_state(row, "Stopping", f"stopped by {user}")
    session.flush()
    return job_detail(row)


def stop_job(
    platform, user: str, workspace: str, job_id: str, *, transaction=None, wait: float = STOP_ANSWER_SECONDS
) -> JobDetail:
    """Stop a Creating/Queuing/Running job and answer once its ranks have ended; after ``wait`` s, the job
    as it stands (still Stopping). ``transaction`` opens the caller's store transactions (a request's, so
    its operation-log entry commits with the stop); the store's by default."""
    from pai_lab.training.manager import get_manager  # late: the manager builds on the job records

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
    row = job_row(session, access.workspace_id, job_id)
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
