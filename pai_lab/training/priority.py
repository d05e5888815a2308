"""Job priority (PAI's 1-9, higher first): who may change it and when.

The order itself is kept by :class:`pai_lab.training.placement.JobQueue`; this module changes a
waiting job's recorded priority and tells the queue once the change commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, NotFound
from pai_lab.store import after_commit
from pai_lab.training.schemas import JobDetail
from pai_lab.training.tables import JobRow
from pai_lab.workspaces import authorize

WAITING_STATES = ("Creating", "Queuing")


def set_priority(session: Session, platform, user: str, workspace: str, job_id: str, priority: int) -> JobDetail:
    """Change a waiting job's priority (AlgorithmOps, Administrator, Owner); a started job keeps its own."""
    from pai_lab.training import service
    from pai_lab.training.manager import get_manager  # late: the manager builds on the job records

    access = authorize(session, user, workspace, "job.priority")
    if not isinstance(priority, int) or not 1 <= priority <= 9:
        raise BadInput(f"priority must be a whole number from 1 to 9 (higher first), got {priority!r}", "priority")
    row = session.get(JobRow, job_id)
    if row is None or row.workspace_id != access.workspace_id:
        raise NotFound(f"no job {job_id!r} in this workspace; `pai dlc get job` lists them", "job_id")
    if row.state not in WAITING_STATES:
        raise Conflict(
            f"job {job_id} is {row.state}: only a job still waiting for slots (Creating or Queuing) "
            "can change its priority",
            "job_id",
        )
    row.spec = {**row.spec, "priority": priority}  # a new dict: the JSON column sees the change
    session.flush()
    manager = get_manager(platform)
    after_commit(session, lambda: manager.queue.reprioritize(job_id, priority))
    return service.get_job(session, user, workspace, job_id)
