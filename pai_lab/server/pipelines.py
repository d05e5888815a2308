"""REST routes of the pipelines area: runs of pipelines, their steps' logs, and requests on them."""

from __future__ import annotations

import asyncio

from pai_lab.changes import RUN_CHANGES
from pai_lab.pipelines import registry, service
from pai_lab.pipelines.schemas import (
    NodeLogLine,
    OperatorSave,
    OperatorsQuery,
    PipelineLogsQuery,
    PipelineRunCreate,
    PipelineRunDetail,
    PipelineRunInfo,
    PipelineRunQuery,
    PipelineRunsQuery,
    SavedOperatorDetail,
    SavedOperatorInfo,
)
from pai_lab.pipelines.status import PipelineRunStatus
from pai_lab.server.routing import Router
from pai_lab.workspaces import service as workspaces

router = Router("pipelines")

if service.refuse_workspace_delete_with_active_runs not in workspaces.DELETE_GUARDS:
    workspaces.DELETE_GUARDS.append(service.refuse_workspace_delete_with_active_runs)

RUNS = "/workspaces/{workspace}/pipelines/runs"


@router.post(
    RUNS,
    name="pipeline.run",
    summary="Run a pipeline (or one operator) from its manifest",
    body=PipelineRunCreate,
    response=PipelineRunDetail,
    status=201,
)
def create_run(req, workspace, body: PipelineRunCreate):
    with req.transaction() as s:
        return service.create_run(s, req.platform, req.user, workspace, body)


@router.get(
    RUNS,
    name="pipeline.list",
    summary="Pipeline runs of the workspace, newest first",
    query=PipelineRunsQuery,
    response=list[PipelineRunInfo],
)
def list_runs(req, workspace, query: PipelineRunsQuery):
    with req.transaction() as s:
        return service.list_runs(s, req.user, workspace, status=query.status, name=query.name, limit=query.limit)


@router.get(
    RUNS + "/{run_id}",
    name="pipeline.get",
    summary="One run with its steps and outputs",
    query=PipelineRunQuery,
    response=PipelineRunDetail,
)
async def get_run(req, workspace, run_id, query: PipelineRunQuery):
    def read():
        with req.transaction() as s:
            return service.get_run(s, req.user, workspace, run_id)

    def status() -> str | None:
        with req.transaction() as s:
            return service.status_of(s, run_id)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + query.wait
    seen = RUN_CHANGES.count(run_id)
    detail = await loop.run_in_executor(None, read)
    while (
        query.status is not None
        and detail.status == query.status
        and detail.status not in PipelineRunStatus.FINISHED
        and loop.time() < deadline
    ):
        # a follower learns of a state change made here the moment it commits; one made by another
        # control plane over the same store within a second, by a look at the run's state alone (a run
        # of many steps is a large answer, read in full only once it has changed)
        woken = await RUN_CHANGES.wait(run_id, seen, min(1.0, deadline - loop.time()))
        seen = RUN_CHANGES.count(run_id)
        if woken or loop.time() >= deadline or await loop.run_in_executor(None, status) != query.status:
            detail = await loop.run_in_executor(None, read)
    return detail


@router.get(
    RUNS + "/{run_id}/logs",
    name="pipeline.logs",
    summary="A page of one step's log lines",
    query=PipelineLogsQuery,
    response=list[NodeLogLine],
)
def run_logs(req, workspace, run_id, query: PipelineLogsQuery):
    with req.transaction() as s:
        return service.run_logs(
            s, req.user, workspace, run_id, query.node, query.page_offset, query.page_size, query.tail
        )


@router.post(
    RUNS + "/{run_id}/terminate",
    name="pipeline.terminate",
    summary="Terminate a run: its running steps end, the others do not start",
    response=PipelineRunDetail,
)
def terminate_run(req, workspace, run_id):
    with req.transaction() as s:
        return service.terminate_run(s, req.platform, req.user, workspace, run_id)


@router.post(
    RUNS + "/{run_id}/suspend",
    name="pipeline.suspend",
    summary="Suspend a run: no new step starts until it is resumed",
    response=PipelineRunDetail,
)
def suspend_run(req, workspace, run_id):
    with req.transaction() as s:
        return service.suspend_run(s, req.platform, req.user, workspace, run_id)


@router.post(
    RUNS + "/{run_id}/resume", name="pipeline.resume", summary="Resume a suspended run", response=PipelineRunDetail
)
def resume_run(req, workspace, run_id):
    with req.transaction() as s:
        return service.resume_run(s, req.platform, req.user, workspace, run_id)


@router.post(
    RUNS + "/{run_id}/retry",
    name="pipeline.retry",
    summary="Retry a Failed or Terminated run: its failed and later steps run again, the rest is reused",
    response=PipelineRunDetail,
)
def retry_run(req, workspace, run_id):
    with req.transaction() as s:
        return service.retry_run(s, req.platform, req.user, workspace, run_id)


OPERATORS = "/workspaces/{workspace}/pipelines/operators"


@router.post(
    OPERATORS,
    name="pipeline.save",
    summary="Save an operator or pipeline as identifier@version",
    body=OperatorSave,
    response=SavedOperatorDetail,
    status=201,
)
def save_operator(req, workspace, body: OperatorSave):
    with req.transaction() as s:
        return registry.save_operator(s, req.user, workspace, body)


@router.get(
    OPERATORS,
    name="pipeline.operators",
    summary="Saved operators of the workspace",
    query=OperatorsQuery,
    response=list[SavedOperatorInfo],
)
def list_operators(req, workspace, query: OperatorsQuery):
    with req.transaction() as s:
        return registry.list_operators(
            s, req.user, workspace, identifier=query.identifier, provider=query.provider, version=query.version
        )


@router.get(
    OPERATORS + "/{pipeline_id}",
    name="pipeline.operator",
    summary="One saved operator with its manifest",
    response=SavedOperatorDetail,
)
def get_operator(req, workspace, pipeline_id):
    with req.transaction() as s:
        return registry.get_operator(s, req.user, workspace, pipeline_id)
