"""REST routes for what runs made: lineage of a dataset, model or service, and the register / deploy
actions on a run's outputs."""

from __future__ import annotations

from pai_lab.pipelines import lineage, output_actions, publish
from pai_lab.pipelines.lineage_schemas import LineageQuery, LineageRecord, OutputAction, OutputDeploy, OutputRegister
from pai_lab.server.routing import Router

router = Router("pipelines")

OUTPUT = "/workspaces/{workspace}/pipelines/runs/{run_id}/outputs/{output}"


@router.get(
    "/workspaces/{workspace}/lineage/{kind}/{name}",
    name="pipeline.lineage",
    summary="Which run, step and inputs made a dataset's or model's versions, or a service",
    query=LineageQuery,
    response=list[LineageRecord],
)
def get_lineage(req, workspace, kind, name, query: LineageQuery):
    with req.transaction() as s:
        return lineage.lineage_of(s, req.user, workspace, kind, name, query.version)


@router.post(
    OUTPUT + "/register",
    name="pipeline.output.register",
    summary="Register a run's artifact output as a model or a dataset version",
    body=OutputRegister,
    response=OutputAction,
    status=201,
)
def register_output(req, workspace, run_id, output, body: OutputRegister):
    with req.transaction() as s:
        return output_actions.register_output(s, req.platform, req.user, workspace, run_id, output, body)


@router.post(
    OUTPUT + "/deploy",
    name="pipeline.output.deploy",
    summary="Deploy a run's model output as a service",
    body=OutputDeploy,
    response=OutputAction,
    status=201,
)
def deploy_output(req, workspace, run_id, output, body: OutputDeploy):
    with req.transaction() as s:
        made = output_actions.deploy_output(s, req.platform, req.user, workspace, run_id, output, body)
    made.endpoint = publish.endpoint_of(req.platform, made.name)  # the gateway started once it committed
    return made
