"""Runs of pipelines: the records, their states, and what a member may ask of them.

A run is a row in the store with PAI's states verbatim, and one node row per step. The driver
(``driver.py``) alone walks a run's nodes through their states; this module records runs, reads
them, and records requests (terminate, suspend, resume, retry) that the driver carries out.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from pai_lab.errors import Conflict, NotFound
from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines import recovery
from pai_lab.pipelines.run_views import detail as _detail
from pai_lab.pipelines.run_views import progress as _progress
from pai_lab.pipelines.run_views import remember_declared
from pai_lab.pipelines.run_views import summary as _summary
from pai_lab.pipelines.schemas import NodeLogLine, PipelineRunCreate, PipelineRunDetail, PipelineRunInfo
from pai_lab.pipelines.status import PipelineRunStatus as S
from pai_lab.pipelines.status import announce_run
from pai_lab.pipelines.tables import NodeRow, RunRow
from pai_lab.pipelines.types import PipelineError
from pai_lab.security.paths import open_own_file
from pai_lab.security.sandbox import sandbox_for
from pai_lab.store import after_commit, new_id, utcnow
from pai_lab.supervision import this_claim
from pai_lab.workspaces import authorize

RUNS_FOLDER = "runs"
ACTIVE = (S.Initialized, S.ReadyToSchedule, S.WorkflowServiceStarting, S.Starting, S.Running)


def runs_dir(platform) -> Path:
    return Path(platform.state_dir) / RUNS_FOLDER


# ------------------------------------------------------------------ arguments


def artifact_location(session: Session, platform, workspace_id: str, value: Any, field: str) -> dict | None:
    """An artifact argument as a location JSON, after the containment policy: a path or URL a member
    names, a ``pai_lab://datasets/<name>[/<version>]`` reference, or a location from an earlier run
    of this workspace (its outputs live in the state folder, which no member may name otherwise)."""
    from pai_lab.security.paths import Containment

    if value is None:
        return None
    if isinstance(value, str) and value.startswith("pai_lab://datasets/"):
        parts = value[len("pai_lab://datasets/") :].strip("/").split("/")
        if not parts[0] or len(parts) > 2:
            raise PipelineError(f"{field}: {value!r}; write pai_lab://datasets/<name>[/<version>]", field)
        return {"location": {"dataset": parts[0], **({"version": parts[1]} if len(parts) == 2 else {})}}
    try:
        loc = manifests.location(value)
    except PipelineError:
        raise PipelineError(f"{field}: {value!r} is not a path, a URL or a location JSON", field) from None
    uri = loc["location"].get("uri")
    if not isinstance(uri, str):
        return loc  # a dataset or model reference, resolved by the step that reads it
    containment = Containment.from_platform(platform)
    if "\0" in uri or not uri:
        raise PipelineError(f"{field}: {uri!r} is not a path or a URL", field)
    local = uri[len("file://") :] if uri.startswith("file://") else (uri if "://" not in uri else None)
    if local is None:
        containment.check(uri, field)
        return loc
    real = Path(local).expanduser()
    real = (Path(platform.root_dir) / real if not real.is_absolute() else real).resolve()
    root = runs_dir(platform).resolve()
    if real.is_relative_to(root) and len(real.relative_to(root).parts) >= 1:
        run_id = real.relative_to(root).parts[0]
        owner = session.scalar(select(RunRow.workspace_id).where(RunRow.id == run_id))
        if owner != workspace_id:
            raise PipelineError(containment.refusal(uri, field), field)
        if not real.exists():
            raise PipelineError(f"{field}: {uri!r} no longer exists; run the step that made it again", field)
    else:
        real = containment.resolve(str(real), field)
    return {"location": {**loc["location"], "uri": f"file://{real}"}}


def resolve_arguments(
    session: Session, platform, workspace_id: str, graph: manifests.Graph, arguments: dict[str, Any]
) -> dict:
    """The run's arguments, checked and typed: pipeline inputs, and literal artifacts the steps name."""
    for name in arguments:
        if name not in graph.inputs:
            raise PipelineError(
                f"arguments.{name}: not an input of the pipeline (inputs: "
                f"{', '.join(v.name for v in graph.inputs) or 'none'})",
                f"arguments.{name}",
            )
    inputs: dict[str, Any] = {}
    for var in graph.inputs:
        field = f"arguments.{var.name}"
        given = arguments.get(var.name)
        if var.kind == "parameters":
            value = var.default if given is None else given
            if value is None:
                raise PipelineError(f"{field}: required argument is not supplied", field)
            inputs[var.name] = manifests.coerce(var, value, field)
        else:
            value = given if given is not None else var.value
            if value is None and var.required:
                raise PipelineError(f"{field}: required artifact is not supplied", field)
            inputs[var.name] = artifact_location(session, platform, workspace_id, value, field)
    literals: dict[str, dict] = {}
    for step in graph.steps.values():
        for name, bound in step.artifacts.items():
            if bound.source == "value" and bound.value is not None:
                literals.setdefault(step.name, {})[name] = artifact_location(
                    session, platform, workspace_id, bound.value, f"steps.{step.name}.{name}"
                )
    return {"inputs": inputs, "literals": literals}


# ------------------------------------------------------------------ runs


def create_run(session: Session, platform, user: str, workspace: str, body: PipelineRunCreate) -> PipelineRunDetail:
    access = authorize(session, user, workspace, "pipeline.run")
    graph = manifests.check(body.manifest)
    arguments = resolve_arguments(session, platform, access.workspace_id, graph, body.arguments)
    sandbox = sandbox_for(session, platform.settings)  # steps run a member's code, as job ranks do
    run_id = new_id("run")
    work = runs_dir(platform) / run_id
    meta = graph.manifest.get("metadata") or {}
    pipeline = f"{meta.get('identifier', 'pipeline')}@{meta.get('version', 'v1')}"
    row = RunRow(
        id=run_id,
        workspace_id=access.workspace_id,
        name=body.name or str(meta.get("identifier", run_id)),
        pipeline=pipeline[:300],
        status=S.Initialized,
        reason="",
        request="",
        manifest=graph.manifest,
        arguments=arguments,
        outputs=[],
        cache=body.cache,
        sandbox=sandbox,
        attempt=1,
        work_dir=str(work),
        created_by=user,
        created_at=utcnow(),
        driver=this_claim(),  # this server drives it from its start
        lease_until=recovery.lease(),
    )
    session.add(row)
    session.flush()  # the run's row before its nodes' (their foreign key)
    nodes = []
    for name, step in graph.steps.items():
        ident = step.operator.get("metadata", {})
        nodes.append(
            {
                "run_id": run_id,
                "workspace_id": access.workspace_id,
                "name": name,
                "node_id": "node-" + hashlib.sha256(f"{run_id}/{name}".encode()).hexdigest()[:12],
                "identifier": f"{ident.get('identifier', '')}@{ident.get('version', 'v1')}"[:300],
                "depends": list(step.depends),
                "status": S.Initialized,
                "reason": "",
                "cached": False,
                "cache_key": "",
                "inputs": {},
                "outputs": {},
                "work_dir": str(work / name),
                "attempt": 0,
            }
        )
    if nodes:
        session.execute(insert(NodeRow), nodes)  # one statement for a wide pipeline's steps, not one each
    remember_declared(run_id, graph.manifest)
    from pai_lab.pipelines.drivers import get_driver

    driver = get_driver(platform)
    after_commit(session, lambda: driver.launch(run_id, graph))  # the driver reads the committed rows
    return _detail(session, row, [SimpleNamespace(**n, started_at=None, finished_at=None) for n in nodes])


def _find(session: Session, workspace_id: str, run_id: str) -> RunRow:
    row = session.get(RunRow, run_id)
    if row is None or row.workspace_id != workspace_id:
        raise NotFound(f"run {run_id!r} not found in this workspace; `pai pipeline ls` lists its runs", "run_id")
    return row


def _nodes(session: Session, run_id: str) -> list[NodeRow]:
    return list(session.scalars(select(NodeRow).where(NodeRow.run_id == run_id).order_by(NodeRow.id)))


def get_run(session: Session, user: str, workspace: str, run_id: str) -> PipelineRunDetail:
    access = authorize(session, user, workspace, "pipeline.read")
    return _detail(session, _find(session, access.workspace_id, run_id))


def status_of(session: Session, run_id: str) -> str | None:
    """The run's state alone: a long poll's look between full reads (which authorize)."""
    return session.scalar(select(RunRow.status).where(RunRow.id == run_id))


def list_runs(
    session: Session, user: str, workspace: str, *, status: str | None = None, name: str | None = None, limit: int = 200
) -> list[PipelineRunInfo]:
    access = authorize(session, user, workspace, "pipeline.read")
    query = select(RunRow).where(RunRow.workspace_id == access.workspace_id)
    if status:
        query = query.where(RunRow.status == status)
    if name:
        query = query.where(RunRow.name == name)
    rows = list(session.scalars(query.order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit)))
    progress = _progress(session, [r.id for r in rows])
    return [_summary(r, progress.get(r.id, (0, 0))) for r in rows]


def run_logs(
    session: Session,
    user: str,
    workspace: str,
    run_id: str,
    node: str,
    page_offset: int = 0,
    page_size: int = 100,
    tail: int = 0,
) -> list[NodeLogLine]:
    """A page of one step's log (PAI's list_node_logs): lines from ``page_offset``, or its last ``tail``."""
    access = authorize(session, user, workspace, "pipeline.read")
    _find(session, access.workspace_id, run_id)
    found = session.scalar(select(NodeRow).where(NodeRow.run_id == run_id, NodeRow.name == node))
    if found is None:
        raise NotFound(f"run {run_id} has no step {node!r}", "node")
    # the step's own code writes its folder: its log is read only as a regular file, never through a link
    f = open_own_file(Path(found.work_dir) / "logs.txt")
    lines: list[NodeLogLine] = []
    if f is None:
        return lines
    with f:
        if tail:
            last = deque(enumerate(f), maxlen=tail)
            return [NodeLogLine(node=node, offset=i, line=line.rstrip("\n")) for i, line in last]
        for i, line in enumerate(f):
            if i >= page_offset + page_size:
                break
            if i >= page_offset:
                lines.append(NodeLogLine(node=node, offset=i, line=line.rstrip("\n")))
    return lines


def _managed(session: Session, user: str, workspace: str, run_id: str) -> RunRow:
    access = authorize(session, user, workspace, "pipeline.read")
    row = _find(session, access.workspace_id, run_id)
    authorize(session, user, workspace, "pipeline.manage", owner=row.created_by)
    return row


def terminate_run(session: Session, platform, user: str, workspace: str, run_id: str) -> PipelineRunDetail:
    """Ask the run's driver to end it: running steps are ended, the rest are not started."""
    row = _managed(session, user, workspace, run_id)
    if row.status in (*ACTIVE, S.Suspended):
        row.request = "terminate"
        row.reason = f"terminated by {user}"
        from pai_lab.pipelines.drivers import get_driver

        driver = get_driver(platform)
        after_commit(session, lambda: driver.poke(run_id))
    else:
        raise Conflict(f"run {run_id} is {row.status}; only a running or suspended run can be terminated", "run_id")
    session.flush()
    return _detail(session, row)


def suspend_run(session: Session, platform, user: str, workspace: str, run_id: str) -> PipelineRunDetail:
    """No new steps start; the running ones finish. ``resume`` goes on."""
    row = _managed(session, user, workspace, run_id)
    if row.status not in ACTIVE:
        raise Conflict(f"run {run_id} is {row.status}; only a running run can be suspended", "run_id")
    row.request = "suspend"
    session.flush()
    return _detail(session, row)


def resume_run(session: Session, platform, user: str, workspace: str, run_id: str) -> PipelineRunDetail:
    row = _managed(session, user, workspace, run_id)
    if row.status != S.Suspended and row.request != "suspend":
        raise Conflict(f"run {run_id} is {row.status}; only a suspended run can be resumed", "run_id")
    row.request = ""
    if row.status == S.Suspended:  # Running from this answer on: its driver goes on (or starts) at once
        row.status = S.Running
        after_commit(session, lambda: announce_run(run_id, S.Running))
    # a teammate's live server that drives it reads the request itself; else this one takes it and drives it
    if row.driver == this_claim() or (
        recovery.free(row) and recovery.take(session, run_id, row.driver, row.lease_until)
    ):
        from pai_lab.pipelines.drivers import get_driver

        driver = get_driver(platform)
        after_commit(session, lambda: driver.launch(run_id))  # no-op when its driver still runs
    session.flush()
    return _detail(session, row)


def retry_run(session: Session, platform, user: str, workspace: str, run_id: str) -> PipelineRunDetail:
    """Run the failed, terminated and not-run steps again; what succeeded is kept and reused."""
    row = _managed(session, user, workspace, run_id)
    authorize(session, user, workspace, "pipeline.run")
    if row.status not in (S.Failed, S.Terminated, S.Unknown):
        raise Conflict(f"run {run_id} is {row.status}; only a Failed or Terminated run can be retried", "run_id")
    row.reason, row.request = "", ""
    row.attempt += 1
    row.driver, row.lease_until = this_claim(), recovery.lease()  # an ended run: nobody else drives it
    _go_on(session, platform, row, _unfinished, note="", status=S.Initialized)
    return _detail(session, row)


def _unfinished(node: NodeRow) -> bool:
    return node.status in (S.Failed, S.Terminated, S.Unknown) or (node.status == S.Skipped and not node.cached)


def _go_on(
    session: Session,
    platform,
    row: RunRow,
    again: Callable[[NodeRow], bool],
    *,
    note: str,
    status: str,
    graph: manifests.Graph | None = None,
) -> int:
    """The one way a run goes on (a retry, a control plane's restart): the steps ``again`` picks are made
    Initialized (``note``: their reason), succeeded ones kept, and its driver starts (a Suspended run's
    waits for ``resume``). Returns how many steps run again."""
    run_id = row.id
    count = 0
    for node in _nodes(session, run_id):
        if again(node):
            node.status, node.reason, node.outputs = S.Initialized, note, {}
            node.started_at = node.finished_at = None
            count += 1
    row.status, row.finished_at = status, None
    row.outputs = []
    session.flush()
    if status == S.Suspended:
        return count
    from pai_lab.pipelines.drivers import get_driver

    driver = get_driver(platform)
    after_commit(session, lambda: announce_run(run_id, status))
    after_commit(session, lambda: driver.launch(run_id, graph))
    return count


def refuse_workspace_delete_with_active_runs(session: Session, workspace_id: str) -> None:
    active = session.scalar(
        select(func.count())
        .select_from(RunRow)
        .where(RunRow.workspace_id == workspace_id, RunRow.status.in_((*ACTIVE, S.Suspended)))
    )
    if active:
        raise Conflict(f"the workspace has {active} active pipeline run(s); terminate them first", "workspace")


def cache_key(operator: dict, parameters: dict, artifacts: dict) -> str:
    payload = json.dumps(
        {"operator": manifests.code_digest(operator), "parameters": parameters, "artifacts": artifacts},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()
