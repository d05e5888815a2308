"""REST routes of the pipelines area: runs of pipelines, their steps' logs, and requests on them."""

from __future__ import annotations

import asyncio

from pai_lab.pipelines import service
from pai_lab.pipelines.schemas import LogLine, LogsQuery, Run, RunCreate, RunDetail, RunQuery, RunsQuery
from pai_lab.pipelines.status import PipelineRunStatus
from pai_lab.server.routing import Router
from pai_lab.workspaces import service as workspaces

router = Router("pipelines")

if service.refuse_workspace_delete_with_active_runs not in workspaces.DELETE_GUARDS:
    workspaces.DELETE_GUARDS.append(service.refuse_workspace_delete_with_active_runs)

RUNS = "/workspaces/{workspace}/pipelines/runs"


@router.post(RUNS, name="pipeline.run", summary="Run a pipeline (or one operator) from its manifest",
             body=RunCreate, response=RunDetail, status=201)
def create_run(req, workspace, body: RunCreate):
    with req.transaction() as s:
        return service.create_run(s, req.platform, req.user, workspace, body)


@router.get(RUNS, name="pipeline.list", summary="Pipeline runs of the workspace, newest first", query=RunsQuery,
            response=list[Run])
def list_runs(req, workspace, query: RunsQuery):
    with req.transaction() as s:
        return service.list_runs(s, req.user, workspace, status=query.status, name=query.name, limit=query.limit)


@router.get(RUNS + "/{run_id}", name="pipeline.get", summary="One run with its steps and outputs", query=RunQuery,
            response=RunDetail)
async def get_run(req, workspace, run_id, query: RunQuery):
    def read():
        with req.transaction() as s:
            return service.get_run(s, req.user, workspace, run_id)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + query.wait
    while True:
        detail = await loop.run_in_executor(None, read)
        if (query.status is None or detail.status != query.status or detail.status in PipelineRunStatus.FINISHED
                or loop.time() >= deadline):
            return detail
        await asyncio.sleep(0.1)


@router.get(RUNS + "/{run_id}/logs", name="pipeline.logs", summary="A page of one step's log lines",
            query=LogsQuery, response=list[LogLine])
def run_logs(req, workspace, run_id, query: LogsQuery):
    with req.transaction() as s:
        return service.run_logs(s, req.user, workspace, run_id, query.node, query.page_offset, query.page_size)


@router.post(RUNS + "/{run_id}/terminate", name="pipeline.terminate",
             summary="Terminate a run: its running steps end, the others do not start", response=RunDetail)
def terminate_run(req, workspace, run_id):
    with req.transaction() as s:
        return service.terminate_run(s, req.platform, req.user, workspace, run_id)


@router.post(RUNS + "/{run_id}/suspend", name="pipeline.suspend",
             summary="Suspend a run: no new step starts until it is resumed", response=RunDetail)
def suspend_run(req, workspace, run_id):
    with req.transaction() as s:
        return service.suspend_run(s, req.platform, req.user, workspace, run_id)


@router.post(RUNS + "/{run_id}/resume", name="pipeline.resume", summary="Resume a suspended run",
             response=RunDetail)
def resume_run(req, workspace, run_id):
    with req.transaction() as s:
        return service.resume_run(s, req.platform, req.user, workspace, run_id)


@router.post(RUNS + "/{run_id}/retry", name="pipeline.retry",
             summary="Retry a Failed or Terminated run: its failed and later steps run again, the rest is reused",
             response=RunDetail)
def retry_run(req, workspace, run_id):
    with req.transaction() as s:
        return service.retry_run(s, req.platform, req.user, workspace, run_id)
