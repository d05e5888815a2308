"""pai_lab's own operators (provider ``pai``, version ``v1``, beside PAI's algorithm ones in builtins.py):
steps that act on the platform rather than on data.

- ``register_dataset``: an artifact (a folder, a file, a bucket prefix) as dataset ``name``, or its next version;
- ``dlc_tf_job``: a DLC job (TensorFlow on the Dask cluster, ``workers`` ranks); the step ends with the job,
  fails with its reason and log tail, and hands on the model the job registered;
- ``register_model``: a model artifact (a SavedModel folder, or a registered model) as model ``name``'s next version;
- ``deploy_model``: a model artifact served as service ``service``; its output is the endpoint;
- ``export_labeling``: a labeling task's answers exported in ``format`` (itag, easyvision, ...) as an artifact.

They run in the control plane, not on a Dask worker: the driver hands them to :func:`submit`, and each calls
the owning area's domain functions as the run's submitter in the run's workspace, so a step can do only
what that member may (a refusal fails the step with the area's message, which names the role). What they
make is recorded in the lineage (``lineage.py``) in the same transaction. They are never cached: each
run makes its objects anew.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pai_lab.errors import Forbidden, PaiError

PROVIDER = "pai"
VERSION = "v1"
JOB_POLL_SECONDS = 0.5
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pai-platform-step")

_ANY = {"type": {"Any": {}}}
_DATASET = {"type": {"DataSet": {"locationType": "Dataset"}}}
_FILES = {"type": {"DataSet": {"locationType": "FileSystem"}}}
_MODEL = {"type": {"Model": {"locationType": "Model"}}}


def _p(name, default=None, typ="String"):
    return {"name": name, "type": typ, **({"value": default} if default is not None else {})}


def _a(name, meta, required=False):
    return {"name": name, "metadata": meta, **({"required": True} if required else {})}


# identifier -> (input parameters, input artifacts, output parameters, output artifacts), as builtins.SPECS
SPECS: dict[str, tuple[list, list, list, list]] = {
    "register_dataset": (
        [_p("name"), _p("description", "")],
        [_a("inputArtifact", _ANY, required=True)],
        [_p("version")],
        [_a("dataset", _DATASET)],
    ),
    "dlc_tf_job": (
        [
            _p("command"),
            _p("workers", 2, "Int"),
            _p("name", ""),
            _p("code_source", ""),
            _p("data_sources", ""),
            _p("userDefinedParameters", ""),
            _p("timeout", 3600, "Int"),
        ],
        [_a("code", _ANY), _a("data", _ANY)],
        [_p("job_id")],
        [_a("model", _MODEL)],
    ),
    "register_model": (
        [_p("name"), _p("description", "")],
        [_a("model", _ANY, required=True)],
        [_p("version")],
        [_a("registeredModel", _MODEL)],
    ),
    "deploy_model": (
        [_p("service"), _p("processor", ""), _p("instance", 1, "Int")],  # "": the one the model's format calls for
        [_a("model", _ANY, required=True)],
        [_p("endpoint"), _p("service")],
        [],
    ),
    "export_labeling": (
        [_p("task"), _p("format", "itag"), _p("options", {}, "Map")],
        [],
        [_p("items", typ="Int")],
        [_a("export", _FILES)],
    ),
}


def is_platform(name: str | None) -> bool:
    return name in SPECS


class StepFailed(Exception):
    """The step's own failure, with the reason the run shows."""


class Step:
    """One platform step in the control plane: who it acts for, where, and its log."""

    def __init__(self, platform, plan: dict):
        self.platform = platform
        self.plan = plan
        self.work = Path(plan["work_dir"])
        self.name = self.work.name
        self.user = plan["user"]
        self.workspace_id = plan["workspace_id"]
        self.run_id = plan["run_id"]
        self.operator = f"{PROVIDER}/{plan['builtin']}@{VERSION}"
        self.stop_file = Path(plan["stop_file"])
        self.outputs: dict = {"parameters": {}, "artifacts": {}}

    def log(self, line: str) -> None:
        with open(self.work / "logs.txt", "a", encoding="utf-8") as out:
            out.write(line.rstrip("\n") + "\n")

    def transaction(self):
        return self.platform.store.transaction()

    def lineage(self, session, made) -> None:
        from pai_lab.pipelines import lineage

        lineage.record(
            session,
            workspace_id=self.workspace_id,
            kind=made.kind,
            name=made.name,
            version=made.version,
            run_id=self.run_id,
            step=self.name,
            operator=self.operator,
            inputs={"parameters": self.plan["parameters"], "artifacts": self.plan["artifacts"]},
            user=self.user,
        )

    @property
    def stopping(self) -> bool:
        return self.stop_file.exists()


# ------------------------------------------------------------------ the operators


def _register_dataset(step: Step, p: dict, a: dict) -> None:
    from pai_lab.pipelines import publish

    with step.transaction() as s:
        made = publish.dataset_version(
            s,
            step.platform,
            step.user,
            step.workspace_id,
            a.get("inputArtifact"),
            name=p["name"],
            description=p.get("description") or f"made by run {step.run_id}, step {step.name}",
            run_id=step.run_id,
            step=step.name,
            field=f"steps.{step.name}.inputArtifact",
        )
        step.lineage(s, made)
    step.log(f"registered dataset {made.name} version {made.version} from {made.path}")
    step.outputs["parameters"]["version"] = made.version
    step.outputs["artifacts"]["dataset"] = {"location": {"dataset": made.name, "version": made.version}}


def _job_inputs(step: Step, p: dict, a: dict) -> tuple[str, list[str]]:
    from pai_lab.pipelines import publish

    code = p.get("code_source") or ""
    sources = [s.strip() for s in str(p.get("data_sources") or "").split(",") if s.strip()]
    with step.transaction() as s:
        if a.get("code"):
            loc = publish.location(s, step.platform, step.workspace_id, a["code"], f"steps.{step.name}.code")
            code = str(loc.get("uri") or "").removeprefix("file://") or code
        if a.get("data"):
            loc = publish.location(s, step.platform, step.workspace_id, a["data"], f"steps.{step.name}.data")
            if not loc.get("dataset"):
                raise StepFailed("input data: a job reads registered datasets; register the output first")
            sources.append(f"{loc['dataset']}:{loc['version']}" if loc.get("version") else str(loc["dataset"]))
    return code, sources


def _dlc_tf_job(step: Step, p: dict, a: dict) -> None:
    from pai_lab.training import service as jobs
    from pai_lab.training.schemas import JobSpec
    from pai_lab.training.submit import submit_job

    code, sources = _job_inputs(step, p, a)
    spec = JobSpec(
        name=p.get("name") or f"{step.name}-{step.run_id}"[:128],
        command=p["command"],
        workers=int(p.get("workers") or 1),
        code_source=code,
        data_sources=sources,
        userDefinedParameters=p.get("userDefinedParameters") or "",
    )
    with step.transaction() as s:
        job = submit_job(s, step.platform, step.user, step.workspace_id, spec)
    step.outputs["parameters"]["job_id"] = job.id
    step.log(f"submitted job {job.id} ({spec.workers} ranks): {spec.command}")
    for warning in job.warnings:
        step.log(f"warning: {warning}")
    deadline = time.monotonic() + int(p.get("timeout") or 3600)
    after = None
    while True:
        with step.transaction() as s:
            job = jobs.get_job(s, step.user, step.workspace_id, job.id)
            lines = jobs.job_logs(s, step.user, step.workspace_id, job.id, after=after)
        for line in lines:
            step.log(f"{line.pod}: {line.line}")
            after = line.id
        if job.state in ("Succeeded", "Failed", "Stopped"):
            break
        if step.stopping or time.monotonic() > deadline:
            jobs.stop_job(step.platform, step.user, step.workspace_id, job.id, wait=10)
            if step.stopping:
                raise StepFailed("terminated")
            raise StepFailed(f"job {job.id} ran past the step's timeout of {p.get('timeout')} s and was stopped")
        time.sleep(JOB_POLL_SECONDS)
    if job.state != "Succeeded":
        raise StepFailed(f"job {job.id} {job.state}: {job.reason or 'no reason given'}")
    if not job.model:
        step.log(f"job {job.id} succeeded without saving a SavedModel to pai_lab.training.model_dir()")
        raise StepFailed(f"job {job.id} succeeded but saved no model (save one to pai_lab.training.model_dir())")
    name, _, version = job.model.rpartition(":")
    from pai_lab.pipelines.publish import Made

    with step.transaction() as s:
        step.lineage(s, Made("model", name, version))
    step.log(f"job {job.id} succeeded; model {job.model}")
    step.outputs["artifacts"]["model"] = {"location": {"model": name, "version": version}}


def _register_model(step: Step, p: dict, a: dict) -> None:
    from pai_lab.pipelines import publish

    with step.transaction() as s:
        made = publish.model_ref(
            s,
            step.platform,
            step.user,
            step.workspace_id,
            a.get("model"),
            name=p["name"],
            description=p.get("description") or f"registered by run {step.run_id}, step {step.name}",
            field=f"steps.{step.name}.model",
        )
        step.lineage(s, made)
    step.log(f"registered model {made.name}:{made.version} ({made.path})")
    step.outputs["parameters"]["version"] = made.version
    step.outputs["artifacts"]["registeredModel"] = {"location": {"model": made.name, "version": made.version}}


def _deploy_model(step: Step, p: dict, a: dict) -> None:
    from pai_lab.pipelines import publish
    from pai_lab.pipelines.output_actions import FILE_MODELS
    from pai_lab.serving.processors.catalog import processor_kind

    field = f"steps.{step.name}.model"
    with step.transaction() as s:
        loc = publish.location(s, step.platform, step.workspace_id, a.get("model"), field)
        processor = p.get("processor") or publish.processor_of(loc) or "tensorflow_cpu"
        if not loc.get("model") and processor_kind(processor) in FILE_MODELS:  # a PMML, ONNX or TorchScript file
            path = publish.model_file(
                s,
                step.platform,
                step.user,
                step.workspace_id,
                a.get("model"),
                service=p["service"],
                run_id=step.run_id,
                step=step.name,
                name="model",
                field=field,
            )
            made = publish.deploy(
                s,
                step.platform,
                step.user,
                step.workspace_id,
                service=p["service"],
                model=path,
                processor=processor,
                instance=int(p.get("instance") or 1),
            )
            step.lineage(s, made)
            endpoint = publish.endpoint_of(step.platform, made.name)
            step.log(f"deployed {path} ({processor}) as service {made.name} at {endpoint}")
            step.outputs["parameters"].update(endpoint=endpoint, service=made.name)
            return
        model = publish.model_ref(
            s,
            step.platform,
            step.user,
            step.workspace_id,
            a.get("model"),
            name="",
            fallback=p["service"],  # a SavedModel folder is registered under the service's name
            description=f"deployed by run {step.run_id}, step {step.name}",
            field=field,
        )
        if not loc.get("model"):  # a folder, registered here
            step.lineage(s, model)
        made = publish.deploy(
            s,
            step.platform,
            step.user,
            step.workspace_id,
            service=p["service"],
            model=f"{model.name}:{model.version}",
            processor=processor,
            instance=int(p.get("instance") or 1),
        )
        step.lineage(s, made)
    endpoint = publish.endpoint_of(step.platform, made.name)  # the gateway started when the service committed
    step.log(f"deployed model {model.name}:{model.version} as service {made.name} at {endpoint}")
    step.outputs["parameters"].update(endpoint=endpoint, service=made.name)


def _export_labeling(step: Step, p: dict, a: dict) -> None:
    from pai_lab.labeling import transfer
    from pai_lab.labeling.formats import FOLDER_FORMATS, SUFFIX
    from pai_lab.labeling.schemas import ExportRequest

    fmt = p.get("format") or "itag"
    folder = step.work / "outputs" / "artifacts" / "export"
    stem = re.sub(r"[^\w.-]+", "_", str(p["task"])).strip("._") or "export"  # never a path of its own
    target = folder / (stem if fmt in FOLDER_FORMATS else f"{stem}{SUFFIX.get(fmt, '.txt')}")
    body = ExportRequest(format=fmt, to=str(target), options=p.get("options") or {}, overwrite=True)
    # the target is this step's own folder; the task's items were checked when they were given
    result = transfer.export_to(step.platform.store, step.user, step.workspace_id, p["task"], body)
    step.log(f"exported {result.items} items of task {p['task']} as {fmt}: {', '.join(result.files[:5])}")
    step.outputs["parameters"]["items"] = result.items
    step.outputs["artifacts"]["export"] = {"location": {"uri": f"file://{target}"}}


OPERATORS = {
    "register_dataset": _register_dataset,
    "dlc_tf_job": _dlc_tf_job,
    "register_model": _register_model,
    "deploy_model": _deploy_model,
    "export_labeling": _export_labeling,
}


# ------------------------------------------------------------------ running one


def _tail(step: Step, lines: int = 20) -> list[str]:
    try:
        return (step.work / "logs.txt").read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def run_platform_step(platform, plan: dict) -> dict:
    """Run one platform step; the same answer as a Dask step's: {exit_code, outputs, error, tail}."""
    from pai_lab.pipelines.executors import STARTED_MARK

    step = Step(platform, plan)
    shutil.rmtree(step.work / "outputs", ignore_errors=True)  # a retry starts from a clean folder
    (step.work / "outputs" / "artifacts").mkdir(parents=True, exist_ok=True)
    (step.work / "step.json").write_text(json.dumps({"parameters": plan["parameters"]}, default=str))
    (step.work / STARTED_MARK).write_text(str(time.time()))
    try:
        OPERATORS[plan["builtin"]](step, plan["parameters"], plan["artifacts"])
    except StepFailed as exc:
        step.log(str(exc))
        return {
            "exit_code": 1,
            "outputs": {},
            "error": str(exc),
            "tail": [] if str(exc) == "terminated" else _tail(step),
        }
    except PaiError as exc:  # the area said no (a role, a name taken, a bad input): its message is the reason
        why = f"refused: {exc.message}" if isinstance(exc, Forbidden) else exc.message
        step.log(why)
        return {"exit_code": 1, "outputs": {}, "error": why, "tail": _tail(step)}
    except Exception as exc:  # noqa: BLE001 - a bug or a lost service fails the step with why, never the driver
        step.log(traceback.format_exc())
        return {"exit_code": 1, "outputs": {}, "error": f"the step failed: {exc}", "tail": _tail(step)}
    return {"exit_code": 0, "outputs": step.outputs, "error": "", "tail": []}


def submit(platform, plan: dict) -> Future:
    """Start a platform step on the control plane's pool; the driver waits on it as on a Dask future."""
    return _POOL.submit(run_platform_step, platform, plan)
