"""A dataset's immutable versions: writing the next one (a scan, a manifest, given lines), listing them.

A version's items are stored as index chunks (:mod:`pai_lab.datasets.manifests`); an unchanged re-scan
shares the previous version's chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.datasets import manifests as mf
from pai_lab.datasets.planning import detect_type, fill_lines, manifest_lines_local, manifest_lines_object
from pai_lab.datasets.records import (
    DEFAULT_MOUNT,
    dataset_row,
    new_dataset_id,
    to_schema,
    validate_name,
    version_row,
    version_schema,
    visible,
)
from pai_lab.datasets.scanners import Progress, ScanResult, scan_local, scan_objects
from pai_lab.datasets.schemas import Dataset, DatasetVersion
from pai_lab.datasets.sources import Roots, parse_object_uri
from pai_lab.datasets.tables import DatasetRow, DatasetVersionRow
from pai_lab.errors import BadInput, Conflict
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize


def write_version(
    session: Session,
    row: DatasetRow,
    user: str,
    description: str,
    hashed: bool,
    fill: Callable[[mf.ChunkWriter], ScanResult],
) -> DatasetVersionRow:
    """Create the next version of ``row`` from what ``fill`` writes, and update the dataset's totals.

    The scan runs before anything is written, so the store's write lock is held only for the
    short insert at the end; a new ``row`` is added to the session then too."""
    number = (row.latest_version or 0) + 1
    previous = session.get(DatasetVersionRow, (row.id, row.latest_version)) if row.latest_version else None
    writer = mf.ChunkWriter(session, row.id, number, previous.chunks_version if previous else None)
    result = fill(writer)
    digest = writer.finish()
    if writer.shared_with is not None and previous is not None and previous.base_uri != result.base_uri:
        writer.shared_with = None  # same keys under another base are other items: keep a copy
    if row not in session:
        session.add(row)
        session.flush()
    version = DatasetVersionRow(
        dataset_id=row.id,
        version=number,
        chunks_version=writer.shared_with or number,
        base_uri=result.base_uri,
        item_count=writer.count,
        total_bytes=writer.total_bytes,
        digest=digest,
        hashed=hashed,
        skipped=result.skipped,
        description=description or "",
        created_by=user,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    writer.store()
    row.latest_version = number
    row.item_count = writer.count
    row.total_bytes = writer.total_bytes
    row.updated_at = utcnow()
    session.flush()
    return version


def type_from_version(session: Session, row: DatasetRow, version: DatasetVersionRow) -> str:
    names = []
    for entry in mf.iter_index(session, row.id, version.chunks_version, limit=1000):
        if entry.manifest:
            source = entry.line(version.base_uri).get("data", {}).get("source")
            if isinstance(source, str):
                names.append(source)
        else:
            names.append(entry.key)
    return detect_type(names, manifest_texts=row.source_kind in ("manifest", "inline", "labeling"))


def list_versions(session: Session, user: str, workspace: str, ref: str) -> list[DatasetVersion]:
    _access, row = dataset_row(session, user, workspace, ref)
    rows = session.scalars(
        select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == row.id).order_by(DatasetVersionRow.version)
    ).all()
    return [version_schema(v) for v in rows]


def get_version(session: Session, user: str, workspace: str, ref: str, version: int | None = None) -> DatasetVersion:
    _access, row = dataset_row(session, user, workspace, ref)
    return version_schema(version_row(session, row, version))


def new_version(
    session: Session,
    user: str,
    workspace: str,
    ref: str,
    *,
    description: str = "",
    content_hash: bool = False,
    items: list | None = None,
    roots: Roots | None = None,
    progress: Progress | None = None,
) -> DatasetVersion:
    """A new immutable version: a re-scan of the source, or the given items. An unchanged re-scan
    shares the previous version's stored index."""
    _access, row = dataset_row(session, user, workspace, ref, "dataset.update")
    if items is not None:
        fill = fill_lines(items, "items", progress=progress, roots=roots)
    elif row.source_kind == "local":
        if roots is None:
            raise BadInput("local datasets are re-scanned through the server", "dataset")
        path = roots.resolve(row.source_uri)

        def fill(writer):
            return scan_local(path, roots, writer, glob=row.glob or None, content_hash=content_hash, progress=progress)
    elif row.source_kind == "s3":
        if roots is not None:  # the options may have changed since it was registered
            roots.object_options(row.source_uri, row.storage_options, "storage_options")
        location = parse_object_uri(row.source_uri, row.storage_options or {})

        def fill(writer):
            return scan_objects(location, writer, glob=row.glob or None, progress=progress)
    elif row.source_kind == "manifest":
        if "://" in row.source_uri:
            if roots is not None:
                roots.object_options(row.source_uri, row.storage_options, "storage_options")
            lines = manifest_lines_object(parse_object_uri(row.source_uri, row.storage_options or {}))
        else:
            if roots is None:
                raise BadInput("local manifests are re-read through the server", "dataset")
            lines = manifest_lines_local(roots.resolve(row.source_uri))
        fill = fill_lines(lines, row.source_uri, already_parsed=True, progress=progress, roots=roots, field="dataset")
    else:
        raise BadInput(
            f"dataset {row.name!r} was registered from {row.source_kind} items; give the new version's "
            "items (register_manifest_version, or `items` in the request)",
            "items",
        )
    version = write_version(session, row, user, description, content_hash, fill)
    if row.data_type == "other" and version.version == 1:  # registered without a scan: detect it now
        row.data_type = type_from_version(session, row, version)
        session.flush()
    return version_schema(version)


def register_manifest_version(
    session: Session,
    user: str,
    workspace: str,
    name: str,
    lines: Iterable[dict],
    *,
    source: str = "labeling",
    description: str = "",
) -> Dataset:
    """Register manifest lines as dataset ``name``; if it exists, as its next version."""
    access = authorize(session, user, workspace, "dataset.read")
    validate_name(name)
    row = session.scalar(
        select(DatasetRow).where(DatasetRow.workspace_id == access.workspace_id, DatasetRow.name == name)
    )
    if row is not None and not visible(access, row):
        raise Conflict(
            f"a dataset named {name!r} already exists in {access.workspace.name!r} and is private to "
            f"{row.created_by}; pick another name",
            "name",
        )
    if row is None:
        access = authorize(session, user, workspace, "dataset.create")
        now = utcnow()
        origin = "labeling" if source == "labeling" else ("public" if source == "public" else "user")
        row = DatasetRow(
            id=new_dataset_id(),
            workspace_id=access.workspace_id,
            name=name,
            description=description or "",
            data_type="other",
            source_kind="labeling" if source == "labeling" else "inline",
            source_uri=source,
            property="file",
            origin=origin,
            storage_options={},
            glob="",
            visibility="workspace",
            tags={},
            mount_path=DEFAULT_MOUNT,
            item_count=0,
            total_bytes=0,
            latest_version=None,
            created_by=user,
            created_at=now,
            updated_at=now,
        )
        fresh = True
    else:
        authorize(session, user, workspace, "dataset.update", owner=row.created_by)
        fresh = False
    version = write_version(session, row, user, description, False, fill_lines(lines, name))
    if fresh:
        row.data_type = type_from_version(session, row, version)
    session.flush()
    return to_schema(row)
