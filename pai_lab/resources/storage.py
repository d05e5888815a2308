"""A workspace's storage: where `eascmd upload` puts model packages, and how the server reads them back.

Empty, the store is the server's folder (:mod:`pai_lab.serving.model_store`); an S3 or OSS prefix makes
uploads objects under ``<prefix>/<member>/``, answered as ``s3://`` paths that a service's ``model_path``
names; the server reads them with the options kept here. No HTTP here."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from pai_lab.datasets.sources import (
    ObjectLocation,
    filesystem,
    mask_options,
    merge_masked,
    object_error,
    parse_object_uri,
)
from pai_lab.errors import BadInput
from pai_lab.resources.schemas import WorkspaceStorage
from pai_lab.resources.tables import WorkspaceStorageRow
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize

MAX_OPTIONS_BYTES = 4096


def get_storage(session: Session, user: str, workspace: str) -> WorkspaceStorage:
    access = authorize(session, user, workspace, "workspace.read")
    row = session.get(WorkspaceStorageRow, access.workspace_id)
    if row is None:
        return WorkspaceStorage()
    return WorkspaceStorage(model_store=row.model_store, storage_options=mask_options(row.storage_options))


def set_storage(
    session: Session, user: str, workspace: str, body: WorkspaceStorage, containment=None
) -> WorkspaceStorage:
    """The workspace's Owner or an Administrator (``resource.manage``) points its model store at a prefix
    the server can reach with the options given (checked now), or back at the server's folder (empty).
    ``containment`` (the server's policy) wants credentials in those options unless its owner allows the
    prefix: the store is read and written on members' behalf, never with the server's own."""
    access = authorize(session, user, workspace, "resource.manage")
    row = session.get(WorkspaceStorageRow, access.workspace_id)
    url = body.model_store.strip()
    if not url:
        if row is not None:
            session.delete(row)
        return WorkspaceStorage()
    if not url.startswith(("s3://", "oss://")):
        raise BadInput(
            f"model_store {url!r}: give s3://BUCKET/PREFIX or oss://BUCKET[.ENDPOINT]/PREFIX, or empty for the "
            "server's folder",
            "model_store",
        )
    options = merge_masked(body.storage_options, row.storage_options if row is not None else {})
    if len(json.dumps(options)) > MAX_OPTIONS_BYTES:
        raise BadInput(f"storage_options: at most {MAX_OPTIONS_BYTES} bytes of JSON", "storage_options")
    if containment is not None:
        containment.object_options(url, options, "storage_options")
    location = _location(url, options)
    try:
        filesystem(location).ls(location.bucket)  # reachable with these options, or say what to fix
    except Exception as exc:  # noqa: BLE001 - each store raises its own kind
        error = object_error(exc, location)
        raise BadInput(error.message, "model_store" if error.field == "source" else error.field) from None
    if row is None:
        row = WorkspaceStorageRow(workspace_id=access.workspace_id, created_by=user)
        session.add(row)
    row.model_store, row.storage_options, row.created_by, row.created_at = url, options, user, utcnow()
    session.flush()
    return WorkspaceStorage(model_store=url, storage_options=mask_options(options))


def _location(url: str, options: dict[str, Any]) -> ObjectLocation:
    try:
        location = parse_object_uri(url, options)
    except BadInput as exc:
        raise BadInput(exc.message.replace("source", "model_store", 1), "model_store") from None
    if location.prefix and not location.prefix.endswith("/"):
        location.prefix += "/"
    return location


def model_store_of(session: Session, workspace_id: str) -> ObjectLocation | None:
    """The workspace's S3 model store (with its options, secrets included), or None for the server's folder."""
    row = session.get(WorkspaceStorageRow, workspace_id)
    return None if row is None else _location(row.model_store, row.storage_options)


def options_for(session: Session, workspace_id: str, uri: str) -> dict[str, Any] | None:
    """The s3fs options that read ``uri`` when it lies in the workspace's model store, else None."""
    store = model_store_of(session, workspace_id)
    if store is None or not uri.startswith(("s3://", "oss://")):
        return None
    try:
        wanted = parse_object_uri(uri, store.options)
    except BadInput:
        return None
    inside = wanted.bucket == store.bucket and wanted.prefix.startswith(store.prefix)
    return store.options if inside else None


def upload(session: Session, workspace_id: str, user: str, relative: str, data: bytes) -> dict | None:
    """Write ``data`` under ``<store>/<user>/<relative>`` when the workspace's store is S3; None otherwise."""
    store = model_store_of(session, workspace_id)
    if store is None:
        return None
    key = f"{store.prefix}{user}/{relative}"
    try:
        with filesystem(store).open(f"{store.bucket}/{key}", "wb") as fh:
            fh.write(data)
    except Exception as exc:  # noqa: BLE001 - each store raises its own kind
        raise object_error(exc, store) from None
    return {"model_path": f"s3://{store.bucket}/{key}", "size": len(data), "path": relative}
