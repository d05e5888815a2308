"""The dataset registry: plain functions over a store session, no HTTP.

Other areas use three of them directly, in-process:

- :func:`iter_items` yields a version's iTAG manifest lines (``{"data": {"source": ...}}``);
- :func:`resolve_source` gives a dataset's URI and its full storage options;
- :func:`register_manifest_version` registers manifest lines (a labeling export) as a dataset or
  as a new version of one.
"""

from __future__ import annotations

import os
import re
import secrets
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import methodcaller
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pai_lab.datasets import manifests as mf
from pai_lab.datasets import samples as sample_sets
from pai_lab.datasets.scanners import Progress, ScanResult, scan_local, scan_objects
from pai_lab.datasets.schemas import (
    CheckReport,
    Dataset,
    DatasetCreate,
    DatasetDiff,
    DatasetVersion,
    DiffEntry,
    Item,
    ItemPage,
    Sample,
)
from pai_lab.datasets.sources import (
    MANIFEST_SUFFIXES,
    TEXT_SUFFIXES,
    ObjectLocation,
    Roots,
    filesystem,
    mask_options,
    merge_masked,
    object_error,
    parse_object_uri,
    split_local_uri,
)
from pai_lab.datasets.tables import DatasetRow, DatasetVersionRow
from pai_lab.errors import BadInput, Conflict, NotFound
from pai_lab.schema import whole_number
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize
from pai_lab.workspaces import permissions as perms
from pai_lab.workspaces.service import Access

NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
DEFAULT_MOUNT = "/root/data/"
_ALNUM = string.ascii_lowercase + string.digits

EXTENSIONS = {
    "image": {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"},
    "video": {".mp4", ".avi", ".mov", ".mkv", ".webm"},
    "audio": {".wav", ".mp3", ".flac", ".ogg", ".m4a"},
    "text": {".txt", ".md", ".json"},
    "tabular": {".csv", ".tsv", ".parquet", ".xlsx"},
}
_BY_EXT = {ext: kind for kind, exts in EXTENSIONS.items() for ext in exts}


def new_dataset_id(prefix: str = "data") -> str:
    """``data-YYYYMMDDhhmmss-<12 lowercase alnum>``: the PAI-DLC data source ID format."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{prefix}-{stamp}-" + "".join(secrets.choice(_ALNUM) for _ in range(12))


def validate_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise BadInput(f"invalid dataset name {name!r}: use 1 to 128 characters, start with a letter or digit, "
                       "then letters, digits, '_', '-' or '.' (for example 'flowers_v1')", what)
    return name


def kind_of_name(name: str) -> str | None:
    return _BY_EXT.get(os.path.splitext(name)[1].lower())


def detect_type(samples: Iterable[str], manifest_texts: bool = False) -> str:
    """The most common media type among item names; texts when the sources are not file names."""
    counts: dict[str, int] = {}
    n = 0
    for name in samples:
        n += 1
        kind = kind_of_name(name.split("?", 1)[0])
        if kind is None and manifest_texts and ("/" not in name or " " in name):
            kind = "text"
        counts[kind or "other"] = counts.get(kind or "other", 0) + 1
    if not n:
        return "other"
    return max(counts.items(), key=lambda kv: (kv[1], kv[0] != "other"))[0]


# ---------------------------------------------------------------- schema and lookups


def to_schema(row: DatasetRow) -> Dataset:
    return Dataset(
        id=row.id, name=row.name, workspace_id=row.workspace_id, data_type=row.data_type,
        description=row.description or "", source_uri=row.source_uri, source_kind=row.source_kind,
        property=row.property, origin=row.origin, visibility=row.visibility, tags=dict(row.tags or {}),
        glob=row.glob or "", mount_path=row.mount_path or "", storage_options=mask_options(row.storage_options),
        item_count=row.item_count or 0, total_bytes=row.total_bytes or 0, latest_version=row.latest_version,
        created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at,
    )


def version_schema(row: DatasetVersionRow) -> DatasetVersion:
    return DatasetVersion(dataset_id=row.dataset_id, version=row.version, item_count=row.item_count,
                          total_bytes=row.total_bytes, digest=row.digest, hashed=row.hashed, skipped=row.skipped,
                          description=row.description or "", created_by=row.created_by, created_at=row.created_at)


def _sees_private(access: Access) -> bool:
    return perms.OWNER in access.roles or perms.ADMIN in access.roles


def _visible(access: Access, row: DatasetRow) -> bool:
    return row.visibility != "private" or row.created_by == access.username or _sees_private(access)


def _find(session: Session, access: Access, ref: str) -> DatasetRow:
    row = session.scalar(select(DatasetRow).where(DatasetRow.workspace_id == access.workspace_id,
                                                  (DatasetRow.name == ref) | (DatasetRow.id == ref)))
    if row is None or not _visible(access, row):
        raise NotFound(f"no dataset {ref!r} in workspace {access.workspace.name!r}; `pai dataset ls` lists them",
                       "dataset")
    return row


def _dataset(session: Session, user: str, workspace: str, ref: str, action: str = "dataset.read"
             ) -> tuple[Access, DatasetRow]:
    access = authorize(session, user, workspace, "dataset.read")
    row = _find(session, access, ref)
    if action != "dataset.read":
        access = authorize(session, user, workspace, action, owner=row.created_by)
    return access, row


def _version_row(session: Session, row: DatasetRow, version: int | None) -> DatasetVersionRow:
    if version is None:
        if row.latest_version is None:
            raise NotFound(f"dataset {row.name!r} has no version yet; make one with `pai dataset versions "
                           f"{row.name} --new` (a scan)", "version")
        version = row.latest_version
    found = session.get(DatasetVersionRow, (row.id, int(version)))
    if found is None:
        raise NotFound(f"dataset {row.name!r} has no version {version}; its versions are 1 to "
                       f"{row.latest_version or 0}", "version")
    return found


# ---------------------------------------------------------------- writing versions


def _write_version(session: Session, row: DatasetRow, user: str, description: str, hashed: bool,
                   fill: Callable[[mf.ChunkWriter], ScanResult]) -> DatasetVersionRow:
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
        dataset_id=row.id, version=number, chunks_version=writer.shared_with or number, base_uri=result.base_uri,
        item_count=writer.count, total_bytes=writer.total_bytes, digest=digest, hashed=hashed,
        skipped=result.skipped, description=description or "", created_by=user, created_at=utcnow())
    session.add(version)
    session.flush()
    writer.store()
    row.latest_version = number
    row.item_count = writer.count
    row.total_bytes = writer.total_bytes
    row.updated_at = utcnow()
    session.flush()
    return version


def _fill_lines(lines: Iterable[Any], where: str, *, already_parsed: bool = False,
                progress: Progress | None = None, file_sizes: bool = False, roots: Roots | None = None,
                field: str = "items") -> Callable[[mf.ChunkWriter], ScanResult]:
    def fill(writer: mf.ChunkWriter) -> ScanResult:
        keys = mf.ManifestKeys()
        for index, value in enumerate(lines):
            line = value if already_parsed else mf.normalize_line(value, f"{where} item {index + 1}")
            if roots is not None:  # an item is read later by whoever may read the dataset: contain it now
                roots.check_item(line.get("data"), field)
            text = mf.dumps_line(line)
            # a manifest item has no size of its own (a sample's files, written by us, do); its stamp is a
            # digest of the line
            size = _file_size(line) if file_sizes else None
            writer.add(keys.key(line, index), size, mf.line_stamp(text), "", text)
            if progress and index % 5000 == 4999:
                progress(writer.seen, 0)
        if progress:
            progress(writer.seen, 0)
        return ScanResult("")

    return fill


def _file_size(line: dict) -> int | None:
    source = line.get("data", {}).get("source")
    try:
        return os.path.getsize(source) if isinstance(source, str) and os.path.isabs(source) else None
    except OSError:
        return None


def _peek_sources(lines: list[dict]) -> list[str]:
    out = []
    for line in lines[:1000]:
        source = line.get("data", {}).get("source")
        if isinstance(source, str):
            out.append(source)
    return out


# ---------------------------------------------------------------- registration


@dataclass
class _Plan:
    kind: str  # local, s3, manifest, inline, sample
    source_uri: str
    property: str
    origin: str = "user"
    data_type: str | None = None
    description: str = ""
    fill: Callable[[mf.ChunkWriter], ScanResult] | None = None
    storage_options: dict | None = None


def _manifest_lines_local(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        yield from mf.parse_manifest_text(fh, name=path.name, text_lines=path.suffix.lower() in TEXT_SUFFIXES)


def _manifest_lines_object(location: ObjectLocation) -> Iterator[dict]:
    fs = filesystem(location)
    try:
        fh = fs.open(f"{location.bucket}/{location.prefix}", "rt", encoding="utf-8")
    except Exception as exc:
        raise object_error(exc, location) from None
    with fh:
        name = location.prefix.rsplit("/", 1)[-1]
        yield from mf.parse_manifest_text(fh, name=name, text_lines=name.lower().endswith(TEXT_SUFFIXES))


def _first_lines(lines: Iterator[dict], n: int = 1000) -> tuple[list[dict], Iterator[dict]]:
    """Peek at the first lines (to detect the type) without losing them."""
    import itertools

    head = list(itertools.islice(lines, n))
    return head, itertools.chain(head, lines)


def _plan(spec: DatasetCreate, roots: Roots | None, state_dir: Path | None, progress: Progress | None) -> _Plan:
    if spec.items is not None:
        if spec.source:
            raise BadInput("give either `source` or `items`, not both", "items")
        lines = [mf.normalize_line(v, f"item {i + 1}") for i, v in enumerate(spec.items)]
        return _Plan("inline", "", "file", data_type=detect_type(_peek_sources(lines), manifest_texts=True),
                     fill=_fill_lines(lines, "items", already_parsed=True, progress=progress, roots=roots))
    source = (spec.source or "").strip()
    if not source:
        raise BadInput("`source` is required: a folder, a file, s3://bucket/prefix/, a .manifest or sample://NAME",
                       "source")
    if source.startswith("sample://"):
        name = source[len("sample://"):].strip("/")
        if state_dir is None:
            raise BadInput("sample datasets are registered through the server", "source")
        data_type, description, lines, folder = sample_sets.materialize(name, state_dir)
        # a sample with files points at their folder, so jobs can mount it like any folder
        return _Plan("sample", str(folder) if folder else source, "folder" if folder else "file", origin="public", data_type=data_type, description=description,
                     fill=_fill_lines(lines, source, already_parsed=True, progress=progress, file_sizes=True))
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in ("s3", "oss"):
        location = parse_object_uri(source, spec.storage_options)
        if location.prefix.lower().endswith(MANIFEST_SUFFIXES + TEXT_SUFFIXES):
            head, lines = _first_lines(_manifest_lines_object(location))
            return _Plan("manifest", source, "file", data_type=detect_type(_peek_sources(head), True),
                         fill=_fill_lines(lines, source, already_parsed=True, progress=progress, roots=roots,
                                          field="source"),
                         storage_options=spec.storage_options)
        plan = _Plan("s3", source, "folder", storage_options=spec.storage_options)
        if spec.scan:
            plan.fill = lambda writer: scan_objects(location, writer, glob=spec.glob, progress=progress)
        else:
            from pai_lab.datasets.scanners import resolve_prefix

            _loc, is_folder = resolve_prefix(location)  # reachable, and the credentials work
            plan.property = "folder" if is_folder else "file"
        return plan
    if scheme and scheme != "file":
        raise BadInput(f"source {source!r}: unsupported scheme {scheme}://; use a local path, s3://, oss:// or "
                       "sample://", "source")
    if roots is None:
        raise BadInput("local sources are registered through the server", "source")
    path = roots.resolve(source)
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES + TEXT_SUFFIXES:
        head, lines = _first_lines(_manifest_lines_local(path))
        return _Plan("manifest", str(path), "file", data_type=detect_type(_peek_sources(head), True),
                     fill=_fill_lines(lines, path.name, already_parsed=True, progress=progress,
                                          roots=roots, field="source"))
    plan = _Plan("local", str(path), "file" if path.is_file() else "folder")
    if spec.scan or path.is_file():
        plan.fill = lambda writer: scan_local(path, roots, writer, glob=spec.glob, content_hash=spec.hash,
                                              progress=progress)
    return plan


def _type_from_version(session: Session, row: DatasetRow, version: DatasetVersionRow) -> str:
    names = []
    for entry in mf.iter_index(session, row.id, version.chunks_version, limit=1000):
        if entry.manifest:
            source = entry.line(version.base_uri).get("data", {}).get("source")
            if isinstance(source, str):
                names.append(source)
        else:
            names.append(entry.key)
    return detect_type(names, manifest_texts=row.source_kind in ("manifest", "inline", "labeling"))


def register_dataset(session: Session, user: str, workspace: str, spec: DatasetCreate, *, roots: Roots | None = None,
                     state_dir: Path | None = None, progress: Progress | None = None) -> Dataset:
    """Register a dataset; with a scan (or a manifest/items source) its version 1 is written too.

    Runs in the caller's transaction: if anything fails, nothing of the dataset remains."""
    access = authorize(session, user, workspace, "dataset.create")
    validate_name(spec.name)
    _refuse_duplicate(session, access, spec.name)
    plan = _plan(spec, roots, state_dir, progress)
    now = utcnow()
    options = spec.storage_options if plan.kind in ("s3", "manifest") else {}
    row = DatasetRow(
        id=new_dataset_id(), workspace_id=access.workspace_id, name=spec.name,
        description=spec.description or plan.description, data_type=spec.data_type or plan.data_type or "other",
        source_kind=plan.kind, source_uri=plan.source_uri, property=plan.property, origin=plan.origin,
        storage_options=dict(options or {}), glob=spec.glob or "", visibility=spec.visibility,
        tags=dict(spec.tags or {}), mount_path=spec.mount_path or DEFAULT_MOUNT, item_count=0, total_bytes=0,
        latest_version=None, created_by=user, created_at=now, updated_at=now,
    )
    try:
        if plan.fill is not None:
            version = _write_version(session, row, user, "registered", spec.hash, plan.fill)
            if spec.data_type is None and plan.data_type is None:
                row.data_type = _type_from_version(session, row, version)
        else:
            session.add(row)
            if spec.data_type is None and plan.kind == "local" and plan.property == "file":
                row.data_type = kind_of_name(plan.source_uri) or "other"
        session.flush()
    except IntegrityError:  # registered under the same name while we scanned
        raise Conflict(f"a dataset named {spec.name!r} was just registered in {access.workspace.name!r}; pick "
                       "another name", "name") from None
    return to_schema(row)


def _refuse_duplicate(session: Session, access: Access, name: str) -> None:
    clash = session.scalar(select(DatasetRow.id).where(DatasetRow.workspace_id == access.workspace_id,
                                                       func.lower(DatasetRow.name) == name.lower()))
    if clash:
        raise Conflict(f"a dataset named {name!r} already exists in {access.workspace.name!r}; pick another name "
                       f"or add a version to it (`pai dataset versions {name} --new`)", "name")


def list_datasets(session: Session, user: str, workspace: str, *, data_type: str | None = None) -> list[Dataset]:
    access = authorize(session, user, workspace, "dataset.read")
    query = select(DatasetRow).where(DatasetRow.workspace_id == access.workspace_id)
    if data_type:
        query = query.where(DatasetRow.data_type == data_type)
    rows = session.scalars(query.order_by(DatasetRow.created_at, DatasetRow.name)).all()
    return [to_schema(r) for r in rows if _visible(access, r)]


def get_dataset(session: Session, user: str, workspace: str, ref: str) -> Dataset:
    return to_schema(_dataset(session, user, workspace, ref)[1])


def update_dataset(session: Session, user: str, workspace: str, ref: str, *, description: str | None = None,
                   tags: dict | None = None, visibility: str | None = None, data_type: str | None = None,
                   storage_options: dict | None = None) -> Dataset:
    _access, row = _dataset(session, user, workspace, ref, "dataset.update")
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
    _access, row = _dataset(session, user, workspace, ref, "dataset.delete")
    info = to_schema(row)
    session.delete(row)
    session.flush()
    return info


def list_versions(session: Session, user: str, workspace: str, ref: str) -> list[DatasetVersion]:
    _access, row = _dataset(session, user, workspace, ref)
    rows = session.scalars(select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == row.id)
                           .order_by(DatasetVersionRow.version)).all()
    return [version_schema(v) for v in rows]


def get_version(session: Session, user: str, workspace: str, ref: str, version: int | None = None) -> DatasetVersion:
    _access, row = _dataset(session, user, workspace, ref)
    return version_schema(_version_row(session, row, version))


def new_version(session: Session, user: str, workspace: str, ref: str, *, description: str = "",
                content_hash: bool = False, items: list | None = None, roots: Roots | None = None,
                progress: Progress | None = None) -> DatasetVersion:
    """A new immutable version: a re-scan of the source, or the given items. An unchanged re-scan
    shares the previous version's stored index."""
    _access, row = _dataset(session, user, workspace, ref, "dataset.update")
    if items is not None:
        fill = _fill_lines(items, "items", progress=progress, roots=roots)
    elif row.source_kind == "local":
        if roots is None:
            raise BadInput("local datasets are re-scanned through the server", "dataset")
        path = roots.resolve(row.source_uri)
        fill = lambda writer: scan_local(path, roots, writer, glob=row.glob or None,
                                         content_hash=content_hash, progress=progress)
    elif row.source_kind == "s3":
        location = parse_object_uri(row.source_uri, row.storage_options or {})
        fill = lambda writer: scan_objects(location, writer, glob=row.glob or None, progress=progress)
    elif row.source_kind == "manifest":
        if "://" in row.source_uri:
            lines = _manifest_lines_object(parse_object_uri(row.source_uri, row.storage_options or {}))
        else:
            if roots is None:
                raise BadInput("local manifests are re-read through the server", "dataset")
            lines = _manifest_lines_local(roots.resolve(row.source_uri))
        fill = _fill_lines(lines, row.source_uri, already_parsed=True, progress=progress, roots=roots,
                           field="dataset")
    else:
        raise BadInput(f"dataset {row.name!r} was registered from {row.source_kind} items; give the new version's "
                       "items (register_manifest_version, or `items` in the request)", "items")
    version = _write_version(session, row, user, description, content_hash, fill)
    if row.data_type == "other" and version.version == 1:  # registered without a scan: detect it now
        row.data_type = _type_from_version(session, row, version)
        session.flush()
    return version_schema(version)


# ---------------------------------------------------------------- reading


def _entries(session: Session, row: DatasetRow, version: DatasetVersionRow, offset: int = 0,
             limit: int | None = None) -> Iterator[mf.IndexEntry]:
    return mf.iter_index(session, row.id, version.chunks_version, offset, limit)


def to_item(entry: mf.IndexEntry, base_uri: str) -> Item:
    line = entry.line(base_uri)
    source = line.get("data", {}).get("source")
    return Item(index=entry.index, key=entry.key, source=source if isinstance(source, str) else None,
                size=entry.size, stamp=entry.stamp, hash=entry.hash, line=line)


def item_page(session: Session, user: str, workspace: str, ref: str, *, version: int | None = None,
              offset: int = 0, limit: int = 50) -> ItemPage:
    _access, row = _dataset(session, user, workspace, ref)
    ver = _version_row(session, row, version)
    items = [to_item(e, ver.base_uri) for e in _entries(session, row, ver, offset, limit)]
    return ItemPage(version=ver.version, offset=offset, total=ver.item_count, items=items)


def iter_items(session: Session, user: str, workspace: str, dataset: str, version: int | None = None
               ) -> Iterator[dict]:
    """A version's iTAG manifest lines, one dict per item, streamed (latest version by default)."""
    _access, row = _dataset(session, user, workspace, dataset)
    ver = _version_row(session, row, version)
    base = ver.base_uri
    for entry in _entries(session, row, ver):
        yield entry.line(base)


def iter_manifest_text(session: Session, user: str, workspace: str, dataset: str, version: int | None = None
                       ) -> Iterator[str]:
    """The version as an iTAG .manifest file: compact JSON lines."""
    _access, row = _dataset(session, user, workspace, dataset)
    ver = _version_row(session, row, version)
    base = ver.base_uri
    for entry in _entries(session, row, ver):
        yield (entry.manifest or mf.dumps_line({"data": {"source": base + entry.key}})) + "\n"


def find_item(session: Session, user: str, workspace: str, dataset: str, key: str, version: int | None = None
              ) -> tuple[Item, dict]:
    """One item by key (or ``#index``), with the storage options needed to read it."""
    _access, row = _dataset(session, user, workspace, dataset)
    ver = _version_row(session, row, version)
    if key.startswith("#") and whole_number(key[1:]) is not None:
        for entry in _entries(session, row, ver, whole_number(key[1:]), 1):
            return to_item(entry, ver.base_uri), dict(row.storage_options or {})
    else:
        for entry in _entries(session, row, ver):
            if entry.key == key:
                return to_item(entry, ver.base_uri), dict(row.storage_options or {})
    raise NotFound(f"dataset {row.name!r} version {ver.version} has no item {key!r}", "key")


def resolve_source(session: Session, user: str, workspace: str, dataset: str) -> tuple[str, dict]:
    """(source URI, storage options with their secrets) for code that reads the data in-process.

    Object-store URIs come back as ``s3://bucket/prefix`` (``oss://`` sources included, with their
    endpoint in the options), ready for ``fsspec.open(uri, **options)``."""
    _access, row = _dataset(session, user, workspace, dataset)
    if row.source_kind in ("s3",) or (row.source_kind == "manifest" and "://" in row.source_uri):
        location = parse_object_uri(row.source_uri, row.storage_options or {})
        return location.uri, dict(location.options)
    if row.source_kind in ("inline", "labeling") or row.source_uri.startswith("sample://"):
        raise BadInput(f"dataset {row.name!r} was registered from {row.source_kind} items and has no folder or "
                       "bucket; read its items with iter_items (or the manifest)", "dataset")
    return row.source_uri, {}


def storage_options_for(session: Session, user: str, workspace: str, dataset: str) -> dict:
    _access, row = _dataset(session, user, workspace, dataset)
    if row.source_kind == "s3" or (row.source_kind == "manifest" and "://" in row.source_uri):
        return dict(parse_object_uri(row.source_uri, row.storage_options or {}).options)
    return {}


def register_manifest_version(session: Session, user: str, workspace: str, name: str, lines: Iterable[dict], *,
                              source: str = "labeling", description: str = "") -> Dataset:
    """Register manifest lines as dataset ``name``; if it exists, as its next version."""
    access = authorize(session, user, workspace, "dataset.read")
    validate_name(name)
    row = session.scalar(select(DatasetRow).where(DatasetRow.workspace_id == access.workspace_id,
                                                  DatasetRow.name == name))
    if row is not None and not _visible(access, row):
        raise Conflict(f"a dataset named {name!r} already exists in {access.workspace.name!r} and is private to "
                       f"{row.created_by}; pick another name", "name")
    if row is None:
        access = authorize(session, user, workspace, "dataset.create")
        now = utcnow()
        origin = "labeling" if source == "labeling" else ("public" if source == "public" else "user")
        row = DatasetRow(id=new_dataset_id(), workspace_id=access.workspace_id, name=name,
                         description=description or "", data_type="other",
                         source_kind="labeling" if source == "labeling" else "inline", source_uri=source,
                         property="file", origin=origin, storage_options={}, glob="", visibility="workspace", tags={},
                         mount_path=DEFAULT_MOUNT, item_count=0, total_bytes=0, latest_version=None,
                         created_by=user, created_at=now, updated_at=now)
        fresh = True
    else:
        authorize(session, user, workspace, "dataset.update", owner=row.created_by)
        fresh = False
    version = _write_version(session, row, user, description, False, _fill_lines(lines, name))
    if fresh:
        row.data_type = _type_from_version(session, row, version)
    session.flush()
    return to_schema(row)


# ---------------------------------------------------------------- diff and check


def _index_map(session: Session, row: DatasetRow, version: DatasetVersionRow, with_base: bool = False
               ) -> dict[str, str]:
    """key -> the rest of its index line (size, stamp, hash, manifest), built chunk by chunk in C
    loops; ``with_base`` folds the base in, for versions whose bases differ."""
    out: dict[str, str] = {}
    split = methodcaller("split", "\t", 1)
    for lines in mf.raw_chunks(session, row.id, version.chunks_version):
        out.update(map(split, lines))
    if with_base and version.base_uri:
        suffix = "\t" + version.base_uri
        out = {key: rest + suffix for key, rest in out.items()}
    return out


def _size_of(rest: str) -> int | None:
    size = rest.split("\t", 1)[0]
    return int(size) if size else None


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    # a hash recorded on one side only is not a change
    pa, pb = a.split("\t"), b.split("\t")
    if len(pa) != len(pb):
        return False
    if pa[2] and pb[2] and pa[2] != pb[2]:
        return False
    return pa[0] == pb[0] and pa[1] == pb[1] and pa[3:] == pb[3:]


def diff_versions(session: Session, user: str, workspace: str, ref: str, from_version: int,
                  to_version: int | None = None, *, limit: int = 1000) -> DatasetDiff:
    """Items added, removed and changed (size, mtime/ETag, hash or manifest line) between two versions."""
    _access, row = _dataset(session, user, workspace, ref)
    old_v = _version_row(session, row, from_version)
    new_v = _version_row(session, row, to_version)
    if old_v.chunks_version == new_v.chunks_version:
        return DatasetDiff(dataset=row.name, from_version=old_v.version, to_version=new_v.version, added_count=0,
                           removed_count=0, changed_count=0, unchanged_count=new_v.item_count, added=[], removed=[],
                           changed=[])
    split = methodcaller("split", "\t", 1)
    if old_v.base_uri != new_v.base_uri:  # same keys under another folder are other items
        old = _index_map(session, row, old_v, with_base=True)
        new = _index_map(session, row, new_v, with_base=True)
    else:
        # Whole lines that appear on one side only, found with C-speed set algebra; only those few
        # are split into keys, so a diff costs about two set builds.
        old_lines: set[str] = set()
        new_lines: set[str] = set()
        for lines in mf.raw_chunks(session, row.id, old_v.chunks_version):
            old_lines.update(lines)
        for lines in mf.raw_chunks(session, row.id, new_v.chunks_version):
            new_lines.update(lines)
        old = dict(map(split, old_lines - new_lines))
        new = dict(map(split, new_lines - old_lines))
        del old_lines, new_lines
    added_keys = new.keys() - old.keys()
    removed_keys = old.keys() - new.keys()
    changed_keys = [k for k in new.keys() & old.keys() if new[k] != old[k] and not _same(old[k], new[k])]
    unchanged = new_v.item_count - len(added_keys) - len(changed_keys)

    def entries(keys, source, other=None):
        picked = sorted(keys)[:limit]
        return [DiffEntry(key=mf.unescape_key(k), size=_size_of(source[k]),
                          old_size=_size_of(other[k]) if other is not None else None) for k in picked]

    truncated = max(len(added_keys), len(removed_keys), len(changed_keys)) > limit
    return DatasetDiff(dataset=row.name, from_version=old_v.version, to_version=new_v.version,
                       added_count=len(added_keys), removed_count=len(removed_keys), changed_count=len(changed_keys),
                       unchanged_count=unchanged, added=entries(added_keys, new), removed=entries(removed_keys, old),
                       changed=entries(changed_keys, new, old), truncated=truncated)


def check_version(session: Session, user: str, workspace: str, ref: str, version: int | None = None, *,
                  roots: Roots | None = None, limit: int = 100) -> CheckReport:
    """Do the version's items still exist, unchanged? Drift is reported, never raised.

    Scanned datasets are listed again and compared by size and mtime/ETag; manifest datasets have
    each local file their lines name checked for existence."""
    _access, row = _dataset(session, user, workspace, ref)
    ver = _version_row(session, row, version)
    missing: list[str] = []
    changed: list[str] = []
    new: list[str] = []
    counts = {"missing": 0, "changed": 0, "new": 0}
    checked = 0

    def note(kind: str, bucket: list[str], key: str) -> None:
        counts[kind] += 1
        if len(bucket) < limit:
            bucket.append(key)

    if row.source_kind in ("local", "s3"):
        recorded = _index_map(session, row, ver, with_base=True)
        listing = mf.IndexCollector()  # compared, never stored
        try:
            if row.source_kind == "local":
                if roots is None:
                    raise BadInput("local datasets are checked through the server", "dataset")
                result = scan_local(roots.resolve(row.source_uri), roots, listing, glob=row.glob or None,
                                    content_hash=ver.hashed)
            else:
                result = scan_objects(parse_object_uri(row.source_uri, row.storage_options or {}), listing,
                                      glob=row.glob or None)
        except BadInput as exc:
            # the whole source is gone: every item is missing, which is drift to report, not an error
            if not any(s in exc.message for s in ("does not exist", "holds no objects", "neither an object")):
                raise
            result = ScanResult(ver.base_uri)
        suffix = "\t" + result.base_uri if result.base_uri else ""
        now_map = {key: rest + suffix for key, rest in listing.lines.items()}
        for key, rest in recorded.items():
            checked += 1
            current = now_map.get(key)
            if current is None:
                note("missing", missing, mf.unescape_key(key))
            elif not _same(rest, current):
                note("changed", changed, mf.unescape_key(key))
        for key in now_map.keys() - recorded.keys():
            note("new", new, mf.unescape_key(key))
    else:
        for entry in _entries(session, row, ver):
            checked += 1
            source = entry.line(ver.base_uri).get("data", {}).get("source")
            local = split_local_uri(source) if isinstance(source, str) else None
            # a path the policy refuses counts as missing: the check is no oracle for the rest of the disk
            refused = roots is not None and local is not None and not roots.contains(local)
            if local and os.path.isabs(local) and (refused or not os.path.exists(local)):
                note("missing", missing, entry.key)
    ok = not (counts["missing"] or counts["changed"])
    if ok:
        message = f"version {ver.version}: all {checked} items are present and unchanged"
    else:
        message = (f"version {ver.version} has drifted: {counts['missing']} missing, {counts['changed']} changed of "
                   f"{checked}; the version still lists them as registered")
    if counts["new"]:
        message += f"; {counts['new']} new items in the source are not in this version (`new_version()` adds them)"
    return CheckReport(dataset=row.name, version=ver.version, ok=ok, checked=checked,
                       missing_count=counts["missing"], changed_count=counts["changed"], new_count=counts["new"],
                       missing=missing, changed=changed, new=new, message=message)


def list_samples() -> list[Sample]:
    return [Sample(name=name, data_type=spec[0], description=spec[1], item_count=sample_sets.SAMPLE_COUNTS[name])
            for name, spec in sample_sets.SAMPLES.items()]
