"""REST routes of the training area: jobs, their logs and metrics, models, the Dask cluster."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from pai_lab.changes import JOB_CHANGES
from pai_lab.server.routing import Router
from pai_lab.training import models, priority, service, submit, tf_submit
from pai_lab.training.manager import get_manager
from pai_lab.training.schemas import (
    TERMINAL_STATES,
    ClusterInfo,
    EnvironmentImage,
    ImagesQuery,
    Job,
    JobDetail,
    JobPriorityUpdate,
    JobQuery,
    JobSpec,
    LogLine,
    LogsQuery,
    MetricPoint,
    MetricsQuery,
    Model,
    ModelRegister,
    PaiTfCommand,
)
from pai_lab.workspaces import service as workspaces

router = Router("training")

if service.refuse_workspace_delete_with_active_jobs not in workspaces.DELETE_GUARDS:
    workspaces.DELETE_GUARDS.append(service.refuse_workspace_delete_with_active_jobs)


class JobsQuery(BaseModel):
    state: str | None = None
    name: str | None = None
    limit: int = Field(200, ge=1, le=10000)


class ModelsQuery(BaseModel):
    name: str | None = None


@router.post(
    "/workspaces/{workspace}/jobs",
    name="job.submit",
    summary="Submit a training job (dlc submit tfjob)",
    body=JobSpec,
    response=JobDetail,
    status=201,
)
def submit_job(req, workspace, body: JobSpec):
    with req.transaction() as s:
        return submit.submit_job(s, req.platform, req.user, workspace, body)


@router.post(
    "/workspaces/{workspace}/jobs/pai-tf",
    name="job.pai_tf",
    summary="Run the PAI-TF command (pai -name tensorflow1120_ext -Dscript=... -Dcluster=...) as a job",
    body=PaiTfCommand,
    response=JobDetail,
    status=201,
)
def run_pai_tf(req, workspace, body: PaiTfCommand):
    with req.transaction() as s:
        return tf_submit.submit_command(s, req.platform, req.user, workspace, body)


@router.get(
    "/workspaces/{workspace}/jobs",
    name="job.list",
    summary="Jobs of the workspace, newest first",
    query=JobsQuery,
    response=list[Job],
)
def list_jobs(req, workspace, query: JobsQuery):
    with req.transaction() as s:
        return service.list_jobs(s, req.user, workspace, state=query.state, name=query.name, limit=query.limit)


@router.get(
    "/workspaces/{workspace}/jobs/{job_id}",
    name="job.get",
    summary="One job with its pods and history",
    query=JobQuery,
    response=JobDetail,
)
async def get_job(req, workspace, job_id, query: JobQuery):
    def read():
        with req.transaction() as s:
            return service.get_job(s, req.user, workspace, job_id)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + query.wait
    while True:
        seen = JOB_CHANGES.count(job_id)
        detail = await loop.run_in_executor(None, read)
        if (
            query.history_after is None
            or len(detail.history) > query.history_after
            or (query.progress is not None and detail.progress != query.progress)
            or detail.state in TERMINAL_STATES
            or loop.time() >= deadline
        ):
            return detail
        # a follower learns of a state change made here the moment it commits, of one made by another
        # control plane over the same store within a second; the record is not read in between
        await JOB_CHANGES.wait(job_id, seen, min(1.0, deadline - loop.time()))


@router.post(
    "/workspaces/{workspace}/jobs/{job_id}/stop",
    name="job.stop",
    summary="Stop a Creating/Queuing/Running job; answers once its ranks have ended",
    response=JobDetail,
)
def stop_job(req, workspace, job_id):
    return service.stop_job(req.platform, req.user, workspace, job_id, transaction=req.transaction)


@router.put(
    "/workspaces/{workspace}/jobs/{job_id}/priority",
    name="job.priority",
    summary="Change a waiting job's priority (1-9, higher first; AlgorithmOps)",
    body=JobPriorityUpdate,
    response=JobDetail,
)
def set_job_priority(req, workspace, job_id, body: JobPriorityUpdate):
    with req.transaction() as s:
        return priority.set_priority(s, req.platform, req.user, workspace, job_id, body.priority)


@router.delete(
    "/workspaces/{workspace}/jobs/{job_id}",
    name="job.delete",
    summary="Delete a finished job with its logs and metrics",
    status=204,
)
def delete_job(req, workspace, job_id):
    with req.transaction() as s:
        service.delete_job(s, req.user, workspace, job_id)


@router.get(
    "/workspaces/{workspace}/jobs/{job_id}/logs",
    name="job.logs",
    summary="A job's log lines (dlc logs): the last max_events_num in the window",
    query=LogsQuery,
    response=list[LogLine],
)
def job_logs(req, workspace, job_id, query: LogsQuery):
    with req.transaction() as s:
        return service.job_logs(
            s,
            req.user,
            workspace,
            job_id,
            pod=query.pod,
            max_events_num=query.max_events_num,
            start_time=query.start_time,
            end_time=query.end_time,
            after=query.after,
            stream=query.stream,
        )


@router.get(
    "/workspaces/{workspace}/jobs/{job_id}/metrics",
    name="job.metrics",
    summary="Metric points reported by the job's ranks",
    query=MetricsQuery,
    response=list[MetricPoint],
)
def job_metrics(req, workspace, job_id, query: MetricsQuery):
    with req.transaction() as s:
        return service.job_metrics(s, req.user, workspace, job_id, pod=query.pod, after=query.after)


@router.get(
    "/workspaces/{workspace}/models",
    name="model.list",
    summary="Model versions of the workspace",
    query=ModelsQuery,
    response=list[Model],
)
def list_models(req, workspace, query: ModelsQuery):
    with req.transaction() as s:
        return models.list_models(s, req.user, workspace, query.name)


@router.post(
    "/workspaces/{workspace}/models",
    name="model.register",
    summary="Register a SavedModel folder as the next version of a model",
    body=ModelRegister,
    response=Model,
    status=201,
)
def register_model(req, workspace, body: ModelRegister):
    with req.transaction() as s:
        from pai_lab.security.paths import Containment

        return models.register_model(
            s,
            req.user,
            workspace,
            body.name,
            body.path,
            job_id=body.job_id,
            description=body.description,
            containment=Containment.from_platform(req.platform),
        )


@router.get(
    "/workspaces/{workspace}/models/{ref}",
    name="model.get",
    summary="A model version: name:version, name (latest) or a job id",
    response=Model,
)
def get_model(req, workspace, ref):
    with req.transaction() as s:
        return models.get_model(s, req.user, workspace, ref)


@router.delete(
    "/workspaces/{workspace}/models/{ref}", name="model.delete", summary="Delete a model version", status=204
)
def delete_model(req, workspace, ref):
    with req.transaction() as s:
        models.delete_model_version(s, req.user, workspace, ref)


@router.get(
    "/cluster",
    name="cluster.get",
    summary="The Dask cluster that runs jobs: workers, cores, GPUs",
    response=ClusterInfo,
)
def cluster(req):
    return get_manager(req.platform).cluster_info()


@router.get(
    "/images",
    name="images.list",
    summary="The environments a job's ranks can run in on this server (dlc get images)",
    query=ImagesQuery,
    response=list[EnvironmentImage],
)
def list_images(req, query: ImagesQuery):
    from pai_lab.training.images import COLUMNS, filter_images, local_images

    found = filter_images(local_images(), query.framework, query.device, query.provider, query.order)
    return [EnvironmentImage.model_validate({c: i[c] for c in COLUMNS}) for i in found]
