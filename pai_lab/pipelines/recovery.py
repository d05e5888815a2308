"""Who drives a run, and how a run whose driver is gone goes on.

A run's row names the control plane driving it (``driver``: :func:`pai_lab.supervision.this_claim`) and
until when that claim holds when it is of another host (``lease_until``, renewed by the driver). A
server takes a run with a conditional update of those two columns as it read them (:func:`take`): of two
servers taking one run at once (two starting together over one store, or a teammate's server and one
that restarts), one update matches and that server alone drives it; the other leaves it.

A run goes on when its driver is gone (:func:`pai_lab.supervision.lapsed`): at a control plane's start
and on its reconcile rounds (:func:`reconcile`), the steps that were running run again from the start,
in the same attempt, in the same transaction as the claim. A Suspended run keeps no claim: it waits for
``resume``, which takes it. A run acts as its submitter: before a (re)started driver starts a step,
:func:`submitter_refusal` asks whether the submitter still may run it (a member removed from the
workspace, or one whose roles no longer allow ``pipeline.run``/``pipeline.manage``, fails the run).
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from pai_lab.errors import Forbidden, NotFound
from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines.executors import STARTED_MARK
from pai_lab.pipelines.status import PipelineRunStatus as S
from pai_lab.pipelines.tables import NodeRow, RunRow
from pai_lab.store import utcnow
from pai_lab.supervision import LEASE_SECONDS, lapsed, this_claim

RERUN_NOTE = "re-run: the control plane restarted while it ran"
TAKEN_NOTE = "re-run: the control plane driving the run stopped while it ran"
RESUMED_REASON = (
    "the control plane restarted while the run was {status}; the run goes on in the same attempt ({attempt}): "
    "its succeeded steps are kept, {rerun} step(s) that were running run again from the start"
)
TAKEN_REASON = (
    "the control plane driving the run ({holder}) stopped while the run was {status}; this server ({me}) goes on "
    "with it in the same attempt ({attempt}): its succeeded steps are kept, {rerun} step(s) that were running "
    "run again from the start"
)
CANNOT_RESUME = (
    "the control plane stopped while the run was {status}, and the run cannot go on: {why}. "
    "Retry the run once that is fixed, or run the pipeline again"
)
SUBMITTER_REFUSED = (
    "the run acts as its submitter '{user}', who may no longer run it: {why}. No step was started; "
    "run the pipeline again as a member who may"
)


def lease() -> datetime:
    return utcnow() + timedelta(seconds=LEASE_SECONDS)


def _changed(result) -> int:
    return cast(CursorResult, result).rowcount


def take(session: Session, run_id: str, held: str, until: datetime | None, *, drive: bool = True) -> bool:
    """Whether this control plane now holds the run (``drive=False``: releases it, nobody drives it),
    changed only as it was read (``held``, ``until``): of two servers taking it at once, one matches."""
    lease_now = RunRow.lease_until.is_(None) if until is None else RunRow.lease_until == until
    done = session.execute(
        update(RunRow)
        .where(RunRow.id == run_id, RunRow.driver == held, lease_now)
        .values(driver=this_claim() if drive else "", lease_until=lease() if drive else None)
        .execution_options(synchronize_session=False)
    )
    return _changed(done) == 1


def renew(session: Session, run_id: str) -> bool:
    """Push this driver's lease on; False when the run is no longer this control plane's."""
    done = session.execute(
        update(RunRow)
        .where(RunRow.id == run_id, RunRow.driver == this_claim())
        .values(lease_until=lease())
        .execution_options(synchronize_session=False)
    )
    return _changed(done) == 1


def free(row: RunRow) -> bool:
    """Whether the run's claim may be taken by this control plane (or is its own already)."""
    return row.driver == this_claim() or lapsed(row.driver, row.lease_until, utcnow())


def submitter_refusal(session: Session, workspace_id: str, user: str) -> str | None:
    """Why the run's submitter may no longer run it in its workspace (None: they may)."""
    try:
        from pai_lab.workspaces import authorize

        authorize(session, user, workspace_id, "pipeline.run")
        authorize(session, user, workspace_id, "pipeline.manage", owner=user)
    except (Forbidden, NotFound) as exc:
        return SUBMITTER_REFUSED.format(user=user, why=exc.message.split("; ")[0])
    return None


def _holder(claim: str) -> str:
    try:
        held = json.loads(claim)
        return f"host {held['host']}, process {held['pid']}"
    except (ValueError, KeyError, TypeError):
        return "none recorded"


def reconcile(platform, *, restarted: bool) -> tuple[list[str], list[str]]:
    """Runs whose driver is gone go on (``restarted``: this control plane has just started; else a
    teammate's server took them over): each in a transaction of its own that takes its claim first.
    Returns (resumed, failed) run ids."""
    from pai_lab.pipelines.service import ACTIVE

    with platform.store.transaction() as s:
        seen = s.execute(
            select(RunRow.id, RunRow.status, RunRow.driver, RunRow.lease_until).where(
                RunRow.status.in_((*ACTIVE, S.Suspended))
            )
        ).all()
    now = utcnow()
    orphans = [r for r in seen if lapsed(r.driver, r.lease_until, now) and (r.status != S.Suspended or r.driver)]
    resumed: list[str] = []
    failed: list[str] = []
    for run_id, status, held, until in orphans:
        with platform.store.transaction() as s:
            if not take(s, run_id, held, until, drive=status != S.Suspended):
                continue  # another server took it first: it drives it
            row = s.get(RunRow, run_id, populate_existing=True)
            if row is None or row.status != status:
                continue
            if _go_on(s, platform, row, holder="" if restarted else _holder(held)):
                resumed.append(run_id)
            else:
                failed.append(run_id)
    return resumed, failed


def _go_on(s: Session, platform, row: RunRow, *, holder: str) -> bool:
    """The run after its driver stopped: running steps made to run again and its driver started (a
    Suspended run waits for resume), or Failed naming why it cannot go on."""
    from pai_lab.pipelines.service import _go_on as go_on
    from pai_lab.pipelines.service import _nodes

    was = row.status
    graph, why = _resumable(row)
    if graph is None:
        _fail(s, row, CANNOT_RESUME.format(status=was, why=why))
        return False
    note = TAKEN_NOTE if holder else RERUN_NOTE
    for node in _nodes(s, row.id):
        if node.status in S.RUNNING:
            _mark_rerun(Path(node.work_dir), note)
    suspended = was == S.Suspended
    status = S.Suspended if suspended else S.WorkflowServiceStarting
    rerun = go_on(s, platform, row, lambda n: n.status in S.RUNNING, note=note, status=status, graph=graph)
    if holder:
        row.reason = TAKEN_REASON.format(
            holder=holder, me=_holder(this_claim()), status=was, attempt=row.attempt, rerun=rerun
        )
    else:
        row.reason = RESUMED_REASON.format(status=was, attempt=row.attempt, rerun=rerun)
    if suspended:
        row.reason += "; it stays Suspended until it is resumed"
    s.flush()
    return True


def _resumable(row: RunRow) -> tuple[manifests.Graph | None, str]:
    if not Path(row.work_dir).is_dir():
        return None, "its work folder is gone"
    try:
        return manifests.check(row.manifest), ""
    except Exception as exc:  # noqa: BLE001 - an operator's code that no longer loads: named, not raised
        return None, f"its manifest no longer loads ({getattr(exc, 'message', exc)})"


def _fail(s: Session, row: RunRow, reason: str) -> None:
    now = utcnow()
    for node in s.scalars(select(NodeRow).where(NodeRow.run_id == row.id)):
        if node.status in S.RUNNING:
            node.status, node.reason, node.finished_at = S.Failed, reason, now
        elif node.status == S.Initialized:
            node.status, node.reason = S.Skipped, "not run: the run ended first"
    row.status, row.reason, row.request, row.finished_at = S.Failed, reason, "", now


def _mark_rerun(work: Path, note: str) -> None:
    """The re-run noted in the step's log (written as the control plane's, never through a link the step's
    code made), and its old start mark removed: the re-run's start is its own."""
    try:
        (work / STARTED_MARK).unlink(missing_ok=True)
        fd = os.open(work / "logs.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, f"[pai_lab] {note}\n".encode())
    finally:
        os.close(fd)
