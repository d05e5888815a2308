"""Turning what a run made into platform objects: a dataset version, a model version, a service.

The platform steps (``platform_ops.py``) and the register / deploy actions on a run's outputs both come
here; each function takes the member it acts for and lets the owning area decide what that member may do
(datasets, training's model registry, serving), so nothing here is done on a right the member lacks. A
location is read through :func:`pai_lab.pipelines.service.artifact_location`: a run's own output (in the
state folder) only when the run is of this workspace, anything else under the containment policy.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict
from pai_lab.pipelines.types import PipelineError

PUBLISHED_FOLDER = "pipeline-outputs"  # under the root: a dataset made by a run is readable like any data
MAX_FILES = 20000
MAX_BYTES = 4 << 30


@dataclass
class Made:
    kind: str  # dataset | model | service
    name: str
    version: str = ""
    endpoint: str | None = None
    path: str = ""


def location(session: Session, platform, workspace_id: str, value, field: str) -> dict:
    """An artifact's location (``{"uri": ...}``, ``{"dataset": ...}``, ``{"model": ...}``) once the
    containment policy has read it; a 400 naming ``field`` otherwise."""
    from pai_lab.pipelines.service import artifact_location

    if value is None:
        raise BadInput(f"{field}: no artifact was given", field)
    try:
        loc = artifact_location(session, platform, workspace_id, value, field)
    except PipelineError as exc:
        raise BadInput(exc.message, field) from None
    return (loc or {}).get("location") or {}


def _local(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    return None if "://" in uri else Path(uri)


# ------------------------------------------------------------------ models


def model_ref(
    session: Session,
    platform,
    user: str,
    workspace_id: str,
    value,
    *,
    name: str,
    description: str,
    field: str,
    fallback: str = "",
) -> Made:
    """A registered model for an artifact: the model it names (registered again as ``name`` when that is
    given and differs), or a SavedModel folder registered as the next version of ``name`` (or ``fallback``)."""
    from pai_lab.training import models

    loc = location(session, platform, workspace_id, value, field)
    if loc.get("model"):
        ref = f"{loc['model']}:{loc['version']}" if loc.get("version") else str(loc["model"])
        found = models.get_model(session, user, workspace_id, ref)
        if name and name != found.name:  # the same SavedModel under another name: its next version
            found = models.register_model(session, user, workspace_id, name, found.path, description=description)
        return Made("model", found.name, str(found.version), path=found.path)
    uri = str(loc.get("uri") or "")
    if not uri:
        raise BadInput(f"{field}: {value!r} names no model (a model reference or a SavedModel folder)", field)
    local = _local(uri)
    path = uri
    if local is not None:
        folder = models.find_saved_model(local.parent if local.is_file() else local)
        if folder is None:
            raise BadInput(f"{field}: {uri!r} holds no SavedModel (no saved_model.pb in it or below it)", field)
        path = folder
    # the location was checked above (a run's own output, or under the roots): registered as it is
    made = models.register_model(session, user, workspace_id, name or fallback, path, description=description)
    return Made("model", made.name, str(made.version), path=made.path)


def processor_of(loc: dict) -> str | None:
    """The serving processor a model location's format calls for (a PMML file: pmml, a SavedModel folder:
    tensorflow_cpu...), read from the file or folder, or a bucket object's name; None when it does not say."""
    from pai_lab.serving.processors.catalog import processor_for_model

    uri = str(loc.get("uri") or "")
    if loc.get("model") or not uri:
        return None  # a registered model is a SavedModel: the default processor
    local = _local(uri)
    if local is None:
        return processor_for_model(Path(uri.split("?", 1)[0]))  # by the object's suffix
    return processor_for_model(local) if local.exists() else None


def model_file(
    session: Session,
    platform,
    user: str,
    workspace_id: str,
    value,
    *,
    service: str,
    run_id: str,
    step: str,
    name: str,
    field: str,
) -> str:
    """A model served from its file (PMML, ONNX, TorchScript), as a service's model_path. A run's own output
    lies in the state folder, which is never served from: it is copied first to
    ``<root>/pipeline-outputs/<workspace>/<run>/<step>/<name>/``, where deploying the same output again finds
    it. Anything else (under the roots, in a bucket) is used where it is."""
    from pai_lab.pipelines.service import runs_dir
    from pai_lab.security.paths import Containment
    from pai_lab.serving.records import check_role

    access = check_role(session, user, workspace_id, "service.deploy", service)  # before anything is copied
    uri = str(location(session, platform, workspace_id, value, field).get("uri") or "")
    if not uri:
        raise BadInput(f"{field}: {value!r} names no model file", field)
    local = _local(uri)
    if local is None:
        return uri
    real = local.resolve()
    if not real.is_relative_to(runs_dir(platform).resolve()):
        return str(real)
    target = Path(platform.root_dir) / PUBLISHED_FOLDER / access.workspace.name / run_id / step / name
    if not target.exists():
        _copy(real, Containment.from_platform(platform).target(str(target), field))
    return str(target / real.name) if real.is_file() else str(target)


# ------------------------------------------------------------------ datasets


def _copy(source: Path, target: Path) -> list[Path]:
    """The output's own files: a link the step made (to server.json, to another run) is never followed."""
    root = source.resolve()

    def own(path: Path) -> bool:
        return path.is_file() and not path.is_symlink() and root in path.resolve().parents

    files = [source] if source.is_file() and not source.is_symlink() else sorted(filter(own, source.rglob("*")))
    if not files:
        raise BadInput(f"{source.name!r} holds no file to register", "artifact")
    if len(files) > MAX_FILES or sum(p.stat().st_size for p in files) > MAX_BYTES:
        raise BadInput(
            f"the output holds more than {MAX_FILES} files or {MAX_BYTES >> 30} GiB; register it from a bucket",
            "artifact",
        )
    copied = []
    for path in files:
        out = target / (path.name if source.is_file() else path.relative_to(source))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out, follow_symlinks=False)
        copied.append(out)
    return copied


def dataset_version(
    session: Session,
    platform,
    user: str,
    workspace_id: str,
    value,
    *,
    name: str,
    description: str,
    run_id: str,
    step: str,
    field: str,
) -> Made:
    """Register an artifact as dataset ``name`` (version 1), or as its next version when it exists.

    A run's own output lies in the state folder, which is never data: it is copied first to
    ``<root>/pipeline-outputs/<workspace>/<run>/<step>/<name>-v<version>/``, where jobs, previews and
    labeling read it."""
    from pai_lab.datasets import service as datasets
    from pai_lab.datasets import versions
    from pai_lab.datasets.schemas import DatasetCreate
    from pai_lab.datasets.tables import DatasetRow
    from pai_lab.pipelines.service import runs_dir
    from pai_lab.security.paths import Containment
    from pai_lab.workspaces import authorize

    access = authorize(session, user, workspace_id, "dataset.read")
    loc = location(session, platform, workspace_id, value, field)
    if loc.get("dataset"):
        raise BadInput(f"{field}: {loc['dataset']!r} is a registered dataset already", field)
    uri = str(loc.get("uri") or "")
    if not uri:
        raise BadInput(f"{field}: {value!r} names no file, folder or bucket prefix", field)
    containment = Containment.from_platform(platform)
    exists = session.scalar(
        select(DatasetRow.id).where(
            DatasetRow.workspace_id == access.workspace_id, func.lower(DatasetRow.name) == name.lower()
        )
    )
    # the right to make the dataset (or its version) is checked before anything is copied
    next_version = 1
    if exists:
        row = session.get(DatasetRow, exists)
        authorize(session, user, workspace_id, "dataset.update", owner=row.created_by if row else None)
        next_version = ((row.latest_version if row else 0) or 0) + 1
    else:
        authorize(session, user, workspace_id, "dataset.create")
    local = _local(uri)
    source = uri
    files: list[Path] = []
    if local is not None:
        real = local.resolve()
        if real.is_relative_to(runs_dir(platform).resolve()):
            folder = Path(platform.root_dir) / PUBLISHED_FOLDER / access.workspace.name / run_id / step
            target = folder / f"{name}-v{next_version}"
            target = containment.target(str(target), field)  # inside the roots, never the state folder, new
            files = _copy(real, target)
            source = str(target / real.name) if real.is_file() else str(target)
        else:
            files = [real] if real.is_file() else sorted(p for p in real.rglob("*") if p.is_file())[:MAX_FILES]
            source = str(real)
    if exists:
        if files:
            items = [{"data": {"source": str(p)}} for p in files]
            version = versions.new_version(
                session, user, workspace_id, name, description=description, items=items, roots=containment
            )
        else:
            raise Conflict(
                f"dataset {name!r} exists; a bucket output is registered under a new name, or add the version "
                "from the bucket (`pai dataset versions NAME --new`)",
                "name",
            )
        return Made("dataset", name, str(version.version), path=source)
    options = _bucket_options(session, access.workspace_id, source) if local is None else {}
    spec = DatasetCreate(name=name, source=source, scan=True, description=description, storage_options=options)
    made = datasets.register_dataset(
        session, user, workspace_id, spec, roots=containment, state_dir=Path(platform.state_dir)
    )
    return Made("dataset", made.name, str(made.latest_version or ""), path=source)


def _bucket_options(session: Session, workspace_id: str, uri: str) -> dict:
    """The storage options a bucket output is read with: the workspace's storage (``set_storage``: its
    endpoint and credentials) when the output lies in that store's bucket, else none (a public bucket, or
    credentials the server's environment has)."""
    from pai_lab.datasets.sources import parse_object_uri
    from pai_lab.resources.storage import model_store_of

    store = model_store_of(session, workspace_id)
    if store is None or not uri.startswith(("s3://", "oss://")):
        return {}
    try:
        wanted = parse_object_uri(uri, store.options)
    except BadInput:
        return {}
    return dict(store.options) if wanted.bucket == store.bucket else {}


# ------------------------------------------------------------------ services


def deploy(
    session: Session,
    platform,
    user: str,
    workspace_id: str,
    *,
    service: str,
    model: str,
    processor: str = "tensorflow_cpu",
    instance: int = 1,
) -> Made:
    """Create service ``service`` serving registered model ``model`` (name:version); the gateway starts
    it once the transaction commits. Its endpoint is known at once."""
    from pai_lab.security.paths import Containment
    from pai_lab.serving.deploy import create_service
    from pai_lab.serving.manager import manager

    gateway = manager(platform)
    name = create_service(
        session,
        user,
        workspace_id,
        {"name": service, "model_path": model, "processor": processor, "metadata": {"instance": instance}},
        gateway.state_dir / "models",
        gateway=gateway,
        containment=Containment.from_platform(platform),
        max_instances=(getattr(platform, "settings", {}) or {}).get("max_service_instances"),
    )
    return Made("service", name, "", endpoint=None)


def endpoint_of(platform, service: str) -> str:
    from pai_lab.serving.manager import manager

    return manager(platform).endpoint(f"/api/predict/{service}")
