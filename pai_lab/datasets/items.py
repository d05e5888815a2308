"""Reading a version's items: pages, the manifest stream, one item by key or position, and the file an
item names, as the containment policy allows it to be read.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.orm import Session

from pai_lab.datasets import manifests as mf
from pai_lab.datasets.records import dataset_row, object_options, version_row
from pai_lab.datasets.schemas import DatasetItem, ItemPage
from pai_lab.datasets.tables import DatasetRow, DatasetVersionRow
from pai_lab.errors import BadInput, NotFound
from pai_lab.schema import whole_number
from pai_lab.security.paths import Containment, scheme_of


def entries(
    session: Session, row: DatasetRow, version: DatasetVersionRow, offset: int = 0, limit: int | None = None
) -> Iterator[mf.IndexEntry]:
    return mf.iter_index(session, row.id, version.chunks_version, offset, limit)


def to_item(entry: mf.IndexEntry, base_uri: str) -> DatasetItem:
    line = entry.line(base_uri)
    source = line.get("data", {}).get("source")
    return DatasetItem(
        index=entry.index,
        key=entry.key,
        source=source if isinstance(source, str) else None,
        size=entry.size,
        stamp=entry.stamp,
        hash=entry.hash,
        line=line,
    )


def item_page(
    session: Session,
    user: str,
    workspace: str,
    ref: str,
    *,
    version: int | None = None,
    offset: int = 0,
    limit: int = 50,
) -> ItemPage:
    _access, row = dataset_row(session, user, workspace, ref)
    ver = version_row(session, row, version)
    items = [to_item(e, ver.base_uri) for e in entries(session, row, ver, offset, limit)]
    return ItemPage(version=ver.version, offset=offset, total=ver.item_count, items=items)


def iter_items(session: Session, user: str, workspace: str, dataset: str, version: int | None = None) -> Iterator[dict]:
    """A version's iTAG manifest lines, one dict per item, streamed (latest version by default)."""
    _access, row = dataset_row(session, user, workspace, dataset)
    ver = version_row(session, row, version)
    base = ver.base_uri
    for entry in entries(session, row, ver):
        yield entry.line(base)


def iter_manifest_text(
    session: Session, user: str, workspace: str, dataset: str, version: int | None = None
) -> Iterator[str]:
    """The version as an iTAG .manifest file: compact JSON lines."""
    _access, row = dataset_row(session, user, workspace, dataset)
    ver = version_row(session, row, version)
    base = ver.base_uri
    for entry in entries(session, row, ver):
        yield (entry.manifest or mf.dumps_line({"data": {"source": base + entry.key}})) + "\n"


def _item(session: Session, row: DatasetRow, ver: DatasetVersionRow, key: str) -> DatasetItem:
    """One item by key, or by position as ``#index``."""
    index = whole_number(key[1:]) if key.startswith("#") else None
    if index is not None:
        for entry in entries(session, row, ver, index, 1):
            return to_item(entry, ver.base_uri)
    else:
        for entry in entries(session, row, ver):
            if entry.key == key:
                return to_item(entry, ver.base_uri)
    raise NotFound(f"dataset {row.name!r} version {ver.version} has no item {key!r}", "key")


def readable_item(
    session: Session,
    user: str,
    workspace: str,
    dataset: str,
    containment: Containment,
    *,
    key: str | None = None,
    index: int | None = None,
    version: int | None = None,
) -> tuple[str, DatasetItem, dict]:
    """The file an item names, for a client to read (its thumbnail, its bytes): (dataset ID, the item with
    ``source`` set to what may be opened, storage options). The containment policy decides: a local
    file is given at the real path it resolved, or refused as any path it refuses."""
    if key is None and index is None:
        raise BadInput("give the item's `key` or its `index`", "key")
    _access, row = dataset_row(session, user, workspace, dataset)
    item = _item(session, row, version_row(session, row, version), key if key is not None else f"#{index}")
    if not item.source or scheme_of(item.source) not in ("", "s3"):  # what these routes stream
        raise NotFound(f"item {item.key!r} is not a file (its data.source is text); read it from `line`", "key")
    options = object_options(row) if row.storage_options else {}
    item.source = str(containment.readable(item.source, "key", options=row.storage_options))
    return row.id, item, options
