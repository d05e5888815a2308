"""The model registry: SavedModels as named, numbered versions of a workspace.

A job's chief saves a SavedModel to ``pai_lab.training.model_dir()``; when the job succeeds the
supervisor registers it as the next version of the model named after the job. Serving asks for
a model by ``name:version``, ``name`` (the latest) or the job id (:func:`get_model_path`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, NotFound
from pai_lab.schema import whole_number
from pai_lab.store import new_id, utcnow
from pai_lab.training.schemas import Model
from pai_lab.training.tables import JobRow, ModelRow
from pai_lab.workspaces import authorize

NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def _model(row: ModelRow) -> Model:
    return Model(
        id=row.id,
        name=row.name,
        version=row.version,
        path=row.path,
        job_id=row.job_id,
        created_by=row.created_by,
        created_at=row.created_at,
        description=row.description or "",
    )


def model_name_for(job_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", job_name).strip("_.-") or "model"
    return name[:128]


def find_saved_model(folder: str | Path, depth: int = 3) -> str | None:
    """The folder holding saved_model.pb at or below ``folder`` (the shallowest, then the newest)."""
    root = Path(folder)
    if not root.is_dir():
        return None
    for level in range(depth + 1):
        hits = sorted(root.glob("/".join(["*"] * level + ["saved_model.pb"])))
        if hits:
            return str(max(hits, key=lambda p: p.stat().st_mtime).parent)
    return None


def _check_job_output(session: Session, job_id: str, real: str) -> None:
    """A job's own model, which no policy checks, must really lie in that job's output or its local
    checkpointDir: its ranks write those folders, and a link there to another job's model (another
    workspace's) would otherwise be registered as this job's."""
    row = session.get(JobRow, job_id)
    launch = (row.launch or {}) if row is not None else {}
    own = [launch.get("output_dir"), launch.get("checkpoint_dir")]
    folders = [Path(os.path.realpath(f)) for f in own if f and "://" not in f]
    if not any(Path(real) == f or f in Path(real).parents for f in folders):
        raise BadInput(f"job {job_id}: its model {real!r} is not in the job's own output", "path")


def register_model(
    session: Session,
    user: str,
    workspace: str,
    name: str,
    path: str,
    *,
    job_id: str | None = None,
    description: str = "",
    containment=None,
) -> Model:
    """``containment`` (the server's policy) checks a path a member names; a job's own output is not."""
    access = authorize(session, user, workspace, "model.register")
    if not NAME_RULE.match(name or ""):
        raise BadInput(f"invalid model name {name!r}: 1-128 letters, digits, '_', '.', '-'", "name")
    if containment is not None:
        path = containment.check(path, "path")
    if "://" not in path:
        if find_saved_model(path, depth=0) is None:
            raise BadInput(f"{path!r} is not a SavedModel folder (no saved_model.pb in it)", "path")
        path = str(Path(path).resolve())
        if job_id is not None and containment is None:
            _check_job_output(session, job_id, path)
    latest = (
        session.scalar(
            select(func.max(ModelRow.version)).where(
                ModelRow.workspace_id == access.workspace_id, ModelRow.name == name
            )
        )
        or 0
    )
    row = ModelRow(
        id=new_id("model"),
        workspace_id=access.workspace_id,
        name=name,
        version=latest + 1,
        path=path,
        job_id=job_id,
        description=description,
        created_by=user,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return _model(row)


def list_models(session: Session, user: str, workspace: str, name: str | None = None) -> list[Model]:
    access = authorize(session, user, workspace, "model.read")
    query = select(ModelRow).where(ModelRow.workspace_id == access.workspace_id)
    if name:
        query = query.where(ModelRow.name == name)
    rows = session.scalars(query.order_by(ModelRow.name, ModelRow.version.desc())).all()
    return [_model(r) for r in rows]


def _find(session: Session, workspace_id: str, ref: str) -> ModelRow:
    base = select(ModelRow).where(ModelRow.workspace_id == workspace_id)
    if ref.startswith("dlc-"):
        row = session.scalar(base.where(ModelRow.job_id == ref).order_by(ModelRow.version.desc()))
    else:
        name, sep, version = ref.rpartition(":")
        if sep and whole_number(version) is not None:
            row = session.scalar(base.where(ModelRow.name == name, ModelRow.version == whole_number(version)))
        else:
            row = session.scalar(base.where(ModelRow.name == ref).order_by(ModelRow.version.desc()))
    if row is None:
        raise NotFound(
            f"no model {ref!r} in this workspace; ws.models.list() shows them (refer to one as "
            "name, name:version or the job id)",
            "model",
        )
    return row


def get_model(session: Session, user: str, workspace: str, ref: str) -> Model:
    access = authorize(session, user, workspace, "model.read")
    return _model(_find(session, access.workspace_id, ref))


def get_model_path(session: Session, user: str, workspace: str, ref: str) -> str:
    """The SavedModel folder (or URI) of ``name:version``, ``name`` (latest) or a job id."""
    return get_model(session, user, workspace, ref).path


def delete_model_version(session: Session, user: str, workspace: str, ref: str) -> None:
    access = authorize(session, user, workspace, "model.read")
    row = _find(session, access.workspace_id, ref)
    authorize(session, user, workspace, "model.delete", owner=row.created_by)
    session.delete(row)
    session.flush()
