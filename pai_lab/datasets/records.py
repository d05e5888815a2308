"""A dataset's record: its ID and name rules, who sees it, how it is found, its schema.

Every part of the area finds a dataset with :func:`dataset_row` (the role check included) and a
version with :func:`version_row`.
"""

from __future__ import annotations

import re
import secrets
import string
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.datasets.schemas import Dataset, DatasetVersion
from pai_lab.datasets.sources import mask_options, parse_object_uri
from pai_lab.datasets.tables import DatasetRow, DatasetVersionRow
from pai_lab.errors import BadInput, NotFound
from pai_lab.workspaces import authorize
from pai_lab.workspaces import permissions as perms
from pai_lab.workspaces.service import Access

NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
DEFAULT_MOUNT = "/root/data/"
_ALNUM = string.ascii_lowercase + string.digits


def new_dataset_id(prefix: str = "data") -> str:
    """``data-YYYYMMDDhhmmss-<12 lowercase alnum>``: the PAI-DLC data source ID format."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{prefix}-{stamp}-" + "".join(secrets.choice(_ALNUM) for _ in range(12))


def validate_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise BadInput(
            f"invalid dataset name {name!r}: use 1 to 128 characters, start with a letter or digit, "
            "then letters, digits, '_', '-' or '.' (for example 'flowers_v1')",
            what,
        )
    return name


def to_schema(row: DatasetRow) -> Dataset:
    return Dataset(
        id=row.id,
        name=row.name,
        workspace_id=row.workspace_id,
        data_type=row.data_type,
        description=row.description or "",
        source_uri=row.source_uri,
        source_kind=row.source_kind,
        property=row.property,
        origin=row.origin,
        visibility=row.visibility,
        tags=dict(row.tags or {}),
        glob=row.glob or "",
        mount_path=row.mount_path or "",
        storage_options=mask_options(row.storage_options),
        item_count=row.item_count or 0,
        total_bytes=row.total_bytes or 0,
        latest_version=row.latest_version,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def version_schema(row: DatasetVersionRow) -> DatasetVersion:
    return DatasetVersion(
        dataset_id=row.dataset_id,
        version=row.version,
        item_count=row.item_count,
        total_bytes=row.total_bytes,
        digest=row.digest,
        hashed=row.hashed,
        skipped=row.skipped,
        description=row.description or "",
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _sees_private(access: Access) -> bool:
    return perms.OWNER in access.roles or perms.ADMIN in access.roles


def visible(access: Access, row: DatasetRow) -> bool:
    return row.visibility != "private" or row.created_by == access.username or _sees_private(access)


def _find(session: Session, access: Access, ref: str) -> DatasetRow:
    row = session.scalar(
        select(DatasetRow).where(
            DatasetRow.workspace_id == access.workspace_id, (DatasetRow.name == ref) | (DatasetRow.id == ref)
        )
    )
    if row is None or not visible(access, row):
        raise NotFound(
            f"no dataset {ref!r} in workspace {access.workspace.name!r}; `pai dataset ls` lists them", "dataset"
        )
    return row


def dataset_row(
    session: Session, user: str, workspace: str, ref: str, action: str = "dataset.read"
) -> tuple[Access, DatasetRow]:
    access = authorize(session, user, workspace, "dataset.read")
    row = _find(session, access, ref)
    if action != "dataset.read":
        access = authorize(session, user, workspace, action, owner=row.created_by)
    return access, row


def version_row(session: Session, row: DatasetRow, version: int | None) -> DatasetVersionRow:
    if version is None:
        if row.latest_version is None:
            raise NotFound(
                f"dataset {row.name!r} has no version yet; make one with `pai dataset versions "
                f"{row.name} --new` (a scan)",
                "version",
            )
        version = row.latest_version
    found = session.get(DatasetVersionRow, (row.id, int(version)))
    if found is None:
        raise NotFound(
            f"dataset {row.name!r} has no version {version}; its versions are 1 to {row.latest_version or 0}", "version"
        )
    return found


def object_options(row: DatasetRow) -> dict:
    """The storage options, secrets included, that read the dataset's objects ({} for local data)."""
    if row.source_kind == "s3" or (row.source_kind == "manifest" and "://" in row.source_uri):
        return dict(parse_object_uri(row.source_uri, row.storage_options or {}).options)
    return {}
