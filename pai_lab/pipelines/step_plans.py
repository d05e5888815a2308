"""What a pipeline step runs with, as its run's driver (:mod:`pai_lab.pipelines.driver`) prepares it: its
inputs resolved from literals, pipeline inputs and earlier steps' outputs (run-scoped placeholders filled in,
the cache key's parameters kept as written), a cache hit from an earlier run, the plan its task gets, and the
sandbox its process sees (the allowed roots read-only, the state folder hidden, its inputs shown again).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import select

from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines import service
from pai_lab.pipelines.status import PipelineRunStatus as S
from pai_lab.pipelines.tables import NodeRow, RunRow

STOP_FILE = ".terminate"  # written in the run's folder to end its steps
_TEMPLATE = re.compile(r"\{\{\s*inputs\.parameters\.([A-Za-z][\w-]*)\s*\}\}")
_RUN_SCOPED = ("${pai_system_run_id}", "${pai_system_node_id}")


def _placeholders(value, run_id: str, node_id: str):
    if isinstance(value, str):
        return value.replace(_RUN_SCOPED[0], run_id).replace(_RUN_SCOPED[1], node_id)
    return value


def _scoped(value) -> bool:
    """A value that names the run or the step (gen_run_node_scoped_placeholder): the cache keys on the
    template, so a second run of the same pipeline finds the first's step."""
    return isinstance(value, str) and any(p in value for p in _RUN_SCOPED)


def _templated(value, parameters: dict):
    """An output's declared value with {{inputs.parameters.x}} filled in (PAI's outputs over inputs)."""
    text = json.dumps(value)
    text = _TEMPLATE.sub(lambda m: str(parameters.get(m.group(1), "")).replace('"', '\\"'), text)
    return json.loads(text)


def resolve(driver, step: manifests.StepPlan, node: dict) -> tuple[dict, dict, dict]:
    """The step's parameters and artifacts, and the parameters its cache key is made of (a run-scoped
    placeholder as written, not as this run expands it)."""
    node_id = node["node_id"]
    params: dict = {}
    keyed: dict = {}
    for var in step.inputs.parameters:
        bound = step.parameters.get(var.name)
        where = f"steps.{step.name}.{var.name}"
        if bound is None or (bound.source == "value" and bound.value is None):
            value = var.default
        elif bound.source == "value":
            value = bound.value
        elif bound.source == "input":
            value = driver.arguments["inputs"][bound.name]
        else:
            value = driver.nodes[bound.step]["outputs"].get("parameters", {}).get(bound.name)
        if value is None:
            continue
        params[var.name] = manifests.coerce(var, _placeholders(value, driver.run_id, node_id), where)
        keyed[var.name] = value if _scoped(value) else params[var.name]
    artifacts: dict = {}
    for var in step.inputs.artifacts:
        bound = step.artifacts.get(var.name)
        if bound is None:
            value = None
        elif bound.source == "value":
            value = driver.arguments.get("literals", {}).get(step.name, {}).get(var.name)
        elif bound.source == "input":
            value = driver.arguments["inputs"].get(bound.name)
        else:
            value = driver.nodes[bound.step]["outputs"].get("artifacts", {}).get(bound.name)
        artifacts[var.name] = value
    if not _platform_step(step):  # the platform's own steps take dataset and model references as they are
        for name, value in artifacts.items():
            artifacts[name] = _registered_located(driver, value, f"steps.{step.name}.{name}")
    return params, artifacts, keyed


def _platform_step(step: manifests.StepPlan) -> bool:
    from pai_lab.pipelines import platform_ops

    return step.kind == "builtin" and platform_ops.is_platform(
        (step.operator.get("spec") or {}).get("builtin", {}).get("name")
    )


def _registered_located(driver, value, field: str):
    """A registered dataset or model given as an artifact (``pai_lab://datasets/<name>[/<version>]``, a
    ``{"location": {"model": ...}}``, a register_dataset or register_model step's output) with where its
    data lies (``uri``: the dataset's folder or bucket prefix, the model version's folder) and, for a
    dataset named without one, the version it is now; read as the run's submitter. A step reads it like
    any location, and a new dataset version is a new input for the cache."""
    loc = value.get("location") if isinstance(value, dict) else None
    if not isinstance(loc, dict) or loc.get("uri") or not (loc.get("dataset") or loc.get("model")):
        return value
    from pai_lab.errors import PaiError

    kind = "dataset" if loc.get("dataset") else "model"
    name = str(loc[kind])
    try:
        with driver.store.transaction() as s:
            if kind == "model":
                from pai_lab.training import models

                ref = f"{name}:{loc['version']}" if loc.get("version") else name
                found = models.get_model(s, driver.user, driver.workspace_id, ref)
                source, version = found.path, found.version
            else:
                from pai_lab.datasets import service as datasets
                from pai_lab.datasets.versions import get_version

                source, _options = datasets.resolve_source(s, driver.user, driver.workspace_id, name)
                version = loc.get("version") or get_version(s, driver.user, driver.workspace_id, name).version
    except PaiError as exc:
        raise manifests.PipelineError(f"{field}: {kind} {name!r}: {exc.message}", field) from None
    uri = source if "://" in source else f"file://{source}"
    return {"location": {**loc, "version": str(version), "uri": uri}}


def task_plan(driver, step: manifests.StepPlan, node: dict, params: dict, artifacts: dict) -> dict:
    """What the step's task runs with (:func:`pai_lab.pipelines.executors.run_step`): its resolved inputs,
    its declared outputs with {{inputs.parameters.x}} filled in, its folders, its sandbox and its code."""
    spec = step.operator.get("spec") or {}
    outputs_spec = {
        "parameters": [
            {**p, "value": _templated(p["value"], params)} if "value" in p else p
            for p in (spec.get("outputs") or {}).get("parameters") or []
        ],
        "artifacts": [
            {**a, "value": _templated(a["value"], params)} if "value" in a else a
            for a in (spec.get("outputs") or {}).get("artifacts") or []
        ],
    }
    plan = {
        "run_id": driver.run_id,
        "node_id": node["node_id"],
        "workspace_id": driver.workspace_id,
        "user": driver.user,
        "work_dir": node["work_dir"],
        "stop_file": str(driver.work_dir / STOP_FILE),
        "kind": step.kind,
        "parameters": params,
        "artifacts": artifacts,
        "inputs_spec": spec.get("inputs") or {},
        "outputs_spec": outputs_spec,
        "sandbox": sandbox_plan(driver, node["work_dir"], artifacts),
        "storage": storage_plan(driver, artifacts),
    }
    if step.kind == "script":
        plan.update(
            entry_file=spec["script"]["entryFile"],
            archive=spec["script"]["code"]["archive"],
            code_sha256=spec["script"]["code"].get("sha256", ""),
            env=spec["script"].get("envs") or {},
        )
    elif step.kind == "builtin":
        plan["builtin"] = spec["builtin"]["name"]
    elif step.kind == "container":
        from pai_lab.pipelines.container import step_plan

        plan.update(step_plan(spec), mounts=container_mounts(driver, artifacts))
    else:
        plan["pickle"] = spec["function"]["pickle"]
    return plan


def _bucket_uris(value) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith(("s3://", "oss://")) else []
    if isinstance(value, dict):
        return [u for v in value.values() for u in _bucket_uris(v)]
    if isinstance(value, list):
        return [u for v in value for u in _bucket_uris(v)]
    return []


def storage_plan(driver, artifacts: dict) -> dict:
    """How the step reaches its artifacts in a bucket: with the workspace store's options where they lie
    in it, never with the server's own credentials (the rule of job ranks, :mod:`pai_lab.training.job_storage`)."""
    from pai_lab.training import job_storage

    uris = _bucket_uris(artifacts)
    if not uris:
        return {"embedded_cluster": True}
    return job_storage.for_ranks(driver.store, driver.workspace_id, {"buckets": uris}, embedded=True)


def cached(driver, key: str) -> tuple[str, dict] | None:
    """The run and outputs of the latest step of this workspace that succeeded with this cache key, unless an
    output it wrote has been cleaned up since."""
    with driver.store.transaction() as s:
        row = s.execute(
            select(NodeRow.run_id, NodeRow.outputs)
            .where(
                NodeRow.workspace_id == driver.workspace_id,
                NodeRow.cache_key == key,
                NodeRow.status == S.Succeeded,
                NodeRow.cached.is_(False),
            )
            .order_by(NodeRow.finished_at.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    for value in (row[1] or {}).get("artifacts", {}).values():  # a cleaned-up output is not a hit
        uri = (value or {}).get("location", {}).get("uri", "")
        if uri.startswith("file://") and not Path(uri[7:]).exists():
            return None
    return row[0], row[1] or {}


def sandbox_plan(driver, work_dir: str, artifacts: dict) -> dict | None:
    """The bubblewrap plan of the step's process when its run is sandboxed (None: it is not)."""
    if not driver.sandbox:
        return None
    from pai_lab.security.paths import SAMPLES_FOLDER, Containment

    platform = driver.manager.platform
    containment = Containment.from_platform(platform)
    state = Path(platform.state_dir).resolve()
    inputs = [p for p in (_readable(driver, v, containment) for v in artifacts.values()) if p]
    return {
        "bwrap": driver.sandbox,
        "read_only": [str(p) for p in containment.all],
        "hidden": [str(state), *(str(p) for p in containment.extra_secrets)],
        "shown_again": [str(state / SAMPLES_FOLDER), *inputs],
        "writable": [work_dir],
    }


def container_mounts(driver, artifacts: dict) -> list[list[str]]:
    """A container step's local inputs as [real path, the pointer's path]: only those :func:`_readable`
    allows, so a pointer an earlier step wrote cannot mount the state folder or another workspace's run."""
    from pai_lab.pipelines.container import local_inputs
    from pai_lab.security.paths import Containment

    containment = Containment.from_platform(driver.manager.platform)
    mounts = []
    for path in local_inputs(artifacts):
        real = _readable(driver, {"location": {"uri": f"file://{path}"}}, containment)
        if real is not None and ":" not in real and "," not in real:
            mounts.append([real, path])
    return mounts


def _readable(driver, value, containment) -> str | None:
    """A local input the step may read inside its sandbox: inside the allowed roots, or an output of a
    run of this workspace. A pointer an earlier step wrote is its own claim, so it is checked here too
    (a step cannot hand the next one the state folder)."""
    uri = str(((value or {}).get("location") or {}).get("uri") or "")
    if not uri.startswith("file://"):
        return None
    real = Path(uri[len("file://") :]).resolve()
    runs = service.runs_dir(driver.manager.platform).resolve()
    if real.is_relative_to(runs) and real != runs:
        with driver.store.transaction() as s:
            owner = s.scalar(select(RunRow.workspace_id).where(RunRow.id == real.relative_to(runs).parts[0]))
        return str(real) if owner == driver.workspace_id else None
    return str(real) if containment.contains(real) else None
