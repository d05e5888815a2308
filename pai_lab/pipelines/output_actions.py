"""What a member may do with a finished run's output: register it (a model or a dataset version) or
deploy it (a model, as a service). The run panel's Register / Deploy buttons and ``ArchivedArtifact``'s
methods come here through the REST API. Each records its lineage: the run, the step that made the
output and the output itself.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, NotFound
from pai_lab.pipelines import lineage, publish
from pai_lab.pipelines.lineage_schemas import OutputAction, OutputDeploy, OutputRegister
from pai_lab.pipelines.tables import NodeRow, RunRow
from pai_lab.workspaces import authorize

FILE_MODELS = ("pmml", "onnx", "torch")  # processors that load a model file, not a registered SavedModel


def _output(session: Session, workspace_id: str, run_id: str, name: str, step: str | None) -> tuple[str, object]:
    """(the step that made it, its value): the run's declared output ``name``, or a step's artifact."""
    from pai_lab.pipelines.run_views import declared_outputs, outputs_by_step, run_outputs

    row = session.get(RunRow, run_id)
    if row is None or row.workspace_id != workspace_id:
        raise NotFound(f"run {run_id!r} not found in this workspace; `ws.pipelines.list()` lists them", "run_id")
    nodes = list(session.scalars(select(NodeRow).where(NodeRow.run_id == run_id).order_by(NodeRow.id)))
    made = run_outputs(run_id, declared_outputs(session, run_id), outputs_by_step(nodes))
    found = [(o.producer, o.value) for o in made if o.name == name and o.kind == "artifacts"]
    found = [f for f in found if step in (None, f[0])]
    if not found:
        found = [
            (n.name, (n.outputs or {}).get("artifacts", {})[name])
            for n in nodes
            if name in (n.outputs or {}).get("artifacts", {}) and step in (None, n.name)
        ]
    if not found:
        raise NotFound(
            f"run {run_id} has no artifact output {name!r}"
            + (f" of step {step!r}" if step else "")
            + "; run.get_outputs() lists them",
            "output",
        )
    if len(found) > 1:
        raise BadInput(
            f"steps {', '.join(f[0] for f in found)} each made an output {name!r}; say which with `step`", "step"
        )
    return found[0]


def register_output(
    session: Session, platform, user: str, workspace: str, run_id: str, name: str, body: OutputRegister
) -> OutputAction:
    access = authorize(session, user, workspace, "pipeline.read")
    if body.kind == "model":  # even when the output names a model already registered: it records lineage
        authorize(session, user, workspace, "model.register")
    step, value = _output(session, access.workspace_id, run_id, name, body.step)
    description = body.description or f"output {name} of run {run_id}, step {step}"
    if body.kind == "model":
        made = publish.model_ref(
            session, platform, user, access.workspace_id, value, name=body.name, description=description, field="output"
        )
    else:
        made = publish.dataset_version(
            session,
            platform,
            user,
            access.workspace_id,
            value,
            name=body.name,
            description=description,
            run_id=run_id,
            step=step,
            field="output",
        )
    record = lineage.record(
        session,
        workspace_id=access.workspace_id,
        kind=made.kind,
        name=made.name,
        version=made.version,
        run_id=run_id,
        step=step,
        operator=f"register {body.kind} from output {name}",
        inputs={"artifacts": {name: value}},
        user=user,
    )
    return OutputAction(kind=made.kind, name=made.name, version=made.version, lineage=record)  # type: ignore[arg-type]


def deploy_output(
    session: Session, platform, user: str, workspace: str, run_id: str, name: str, body: OutputDeploy
) -> OutputAction:
    """Deploy a model output with the processor its format calls for (unless ``processor`` says): a
    SavedModel folder is registered first (as ``model_name``, default the service's name), so the service
    serves a model version with its own lineage; a model file (PMML, ONNX, TorchScript) is served from its
    published copy."""
    from pai_lab.serving.processors.catalog import processor_kind

    access = authorize(session, user, workspace, "pipeline.read")
    step, value = _output(session, access.workspace_id, run_id, name, body.step)
    loc = publish.location(session, platform, access.workspace_id, value, "output")
    processor = body.processor or publish.processor_of(loc) or "tensorflow_cpu"
    if not loc.get("model") and processor_kind(processor) in FILE_MODELS:
        path = publish.model_file(
            session,
            platform,
            user,
            access.workspace_id,
            value,
            service=body.service,
            run_id=run_id,
            step=step,
            name=name,
            field="output",
        )
        return _deploy(session, platform, user, access.workspace_id, body, processor, path, run_id, step, name, value)
    model = publish.model_ref(
        session,
        platform,
        user,
        access.workspace_id,
        value,
        name=body.model_name or "",
        fallback=body.service,
        description=f"output {name} of run {run_id}, step {step}",
        field="output",
    )
    if model.name != (value or {}).get("location", {}).get("model"):  # registered here: its lineage too
        lineage.record(
            session,
            workspace_id=access.workspace_id,
            kind="model",
            name=model.name,
            version=model.version,
            run_id=run_id,
            step=step,
            operator=f"register model from output {name}",
            inputs={"artifacts": {name: value}},
            user=user,
        )
    model_ref = f"{model.name}:{model.version}"
    return _deploy(session, platform, user, access.workspace_id, body, processor, model_ref, run_id, step, name, value)


def _deploy(
    session: Session,
    platform,
    user: str,
    workspace_id: str,
    body: OutputDeploy,
    processor: str,
    model: str,
    run_id: str,
    step: str,
    name: str,
    value,
) -> OutputAction:
    made = publish.deploy(
        session,
        platform,
        user,
        workspace_id,
        service=body.service,
        model=model,
        processor=processor,
        instance=body.instance,
    )
    record = lineage.record(
        session,
        workspace_id=workspace_id,
        kind="service",
        name=made.name,
        version="",
        run_id=run_id,
        step=step,
        operator=f"deploy output {name}",
        inputs={"artifacts": {name: value}, "parameters": {"model": model, "processor": processor}},
        user=user,
    )
    return OutputAction(kind="service", name=made.name, lineage=record)
