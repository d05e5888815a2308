"""The dataset registry: register, list, show, change and forget datasets. Plain functions over a store
session, no HTTP; the rest of the area sits beside it:

- :mod:`~pai_lab.datasets.planning`: what a source is and how its items are read;
- :mod:`~pai_lab.datasets.versions`: a dataset's immutable versions;
- :mod:`~pai_lab.datasets.items`: reading a version's items (and the file an item names);
- :mod:`~pai_lab.datasets.compare`: diff and drift check between versions.

Other areas use three functions in-process, all importable from here:

- :func:`iter_items` yields a version's iTAG manifest lines (``{"data": {"source": ...}}``);
- :func:`resolve_source` gives a dataset's URI and its full storage options;
- :func:`register_manifest_version` registers manifest lines (a labeling export) as a dataset or
  as a new version of one.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pai_lab.datasets import samples as sample_sets
from pai_lab.datasets.items import iter_items
from pai_lab.datasets.planning import kind_of_name, plan_source
from pai_lab.datasets.records import (
    DEFAULT_MOUNT,
    dataset_row,
    new_dataset_id,
    object_options,
    to_schema,
    validate_name,
    visible,
)
from pai_lab.datasets.scanners import Progress
from pai_lab.datasets.schemas import Dataset, DatasetCreate, Sample
from pai_lab.datasets.sources import Roots, merge_masked, parse_object_uri
from pai_lab.datasets.tables import DatasetRow
from pai_lab.datasets.versions import register_manifest_version, type_from_version, write_version
from pai_lab.errors import BadInput, Conflict
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize
from pai_lab.workspaces.service import Access

# the in-process API other areas use (see above)
__all__ = [
    "DEFAULT_MOUNT",
    "delete_dataset",
    "get_dataset",
    "iter_items",
    "list_datasets",
    "list_samples",
    "register_dataset",
    "register_manifest_version",
    "resolve_source",
    "storage_options_for",
    "update_dataset",
]


def register_dataset(
    session: Session,
    user: str,
    workspace: str,
    spec: DatasetCreate,
    *,
    roots: Roots | None = None,
    state_dir: Path | None = None,
    progress: Progress | None = None,
) -> Dataset:
    """Register a dataset; with a scan (or a manifest/items source) its version 1 is written too.

    Runs in the caller's transaction: if anything fails, nothing of the dataset remains."""
    access = authorize(session, user, workspace, "dataset.create")
    validate_name(spec.name)
    _refuse_duplicate(session, access, spec.name)
    plan = plan_source(spec, roots, state_dir, progress)
    now = utcnow()
    options = spec.storage_options if plan.kind in ("s3", "manifest") else {}
    row = DatasetRow(
        id=new_dataset_id(),
        workspace_id=access.workspace_id,
        name=spec.name,
        description=spec.description or plan.description,
        data_type=spec.data_type or plan.data_type or "other",
        source_kind=plan.kind,
        source_uri=plan.source_uri,
        property=plan.property,
        origin=plan.origin,
        storage_options=dict(options or {}),
        glob=spec.glob or "",
        visibility=spec.visibility,
        tags=dict(spec.tags or {}),
        mount_path=spec.mount_path or DEFAULT_MOUNT,
        item_count=0,
        total_bytes=0,
        latest_version=None,
        created_by=user,
        created_at=now,
        updated_at=now,
    )
    try:
        if plan.fill is not None:
            version = write_version(session, row, user, "registered", spec.hash, plan.fill)
            if spec.data_type is None and plan.data_type is None:
                row.data_type = type_from_version(session, row, version)
        else:
            session.add(row)
            if spec.data_type is None and plan.kind == "local" and plan.property == "file":
                row.data_type = kind_of_name(plan.source_uri) or "other"
        session.flush()
    except IntegrityError:  # registered under the same name while we scanned
        raise Conflict(
            f"a dataset named {spec.name!r} was just registered in {access.workspace.name!r}; pick another name", "name"
        ) from None
    return to_schema(row)


def _refuse_duplicate(session: Session, access: Access, name: str) -> None:
    clash = session.scalar(
        select(DatasetRow.id).where(
            DatasetRow.workspace_id == access.workspace_id, func.lower(DatasetRow.name) == name.lower()
        )
    )
    if clash:
        raise Conflict(
            f"a dataset named {name!r} already exists in {access.workspace.name!r}; pick another name "
            f"or add a version to it (`pai dataset versions {name} --new`)",
            "name",
        )


def list_datasets(session: Session, user: str, workspace: str, *, data_type: str | None = None) -> list[Dataset]:
    access = authorize(session, user, workspace, "dataset.read")
    query = select(DatasetRow).where(DatasetRow.workspace_id == access.workspace_id)
    if data_type:
        query = query.where(DatasetRow.data_type == data_type)
    rows = session.scalars(query.order_by(DatasetRow.created_at, DatasetRow.name)).all()
    return [to_schema(r) for r in rows if visible(access, r)]


def get_dataset(session: Session, user: str, workspace: str, ref: str) -> Dataset:
    return to_schema(dataset_row(session, user, workspace, ref)[1])


def update_dataset(
    session: Session,
    user: str,
    workspace: str,
    ref: str,
    *,
    description: str | None = None,
    tags: dict | None = None,
    visibility: str | None = None,
    data_type: str | None = None,
    storage_options: dict | None = None,
) -> Dataset:
    _access, row = dataset_row(session, user, workspace, ref, "dataset.update")
    if description is not None:
        row.description = description
    if tags is not None:
        row.tags = dict(tags)
    if visibility is not None:
        row.visibility = visibility
    if data_type is not None:
        row.data_type = data_type
    if storage_options is not None:
        row.storage_options = merge_masked(storage_options, row.storage_options or {})
    row.updated_at = utcnow()
    session.flush()
    return to_schema(row)


def delete_dataset(session: Session, user: str, workspace: str, ref: str) -> Dataset:
    """Forget the dataset and its versions; the data itself (files, objects) is never touched."""
    _access, row = dataset_row(session, user, workspace, ref, "dataset.delete")
    info = to_schema(row)
    session.delete(row)
    session.flush()
    return info


def resolve_source(session: Session, user: str, workspace: str, dataset: str) -> tuple[str, dict]:
    """(source URI, storage options with their secrets) for code that reads the data in-process.

    Object-store URIs come back as ``s3://bucket/prefix`` (``oss://`` sources included, with their
    endpoint in the options), ready for ``fsspec.open(uri, **options)``."""
    _access, row = dataset_row(session, user, workspace, dataset)
    if row.source_kind in ("s3",) or (row.source_kind == "manifest" and "://" in row.source_uri):
        location = parse_object_uri(row.source_uri, row.storage_options or {})
        return location.uri, dict(location.options)
    if row.source_kind in ("inline", "labeling") or row.source_uri.startswith("sample://"):
        raise BadInput(
            f"dataset {row.name!r} was registered from {row.source_kind} items and has no folder or "
            "bucket; read its items with iter_items (or the manifest)",
            "dataset",
        )
    return row.source_uri, {}


def storage_options_for(session: Session, user: str, workspace: str, dataset: str) -> dict:
    return object_options(dataset_row(session, user, workspace, dataset)[1])


def list_samples() -> list[Sample]:
    return [
        Sample(name=name, data_type=spec[0], description=spec[1], item_count=sample_sets.SAMPLE_COUNTS[name])
        for name, spec in sample_sets.SAMPLES.items()
    ]
