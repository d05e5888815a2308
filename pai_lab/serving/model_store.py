"""The workspace's model store, where `eascmd upload` puts a model or processor package: a folder
under the server's root (``eas-models/<workspace>/<member>/<path>``), so the path it answers is a
`model_path` the server's containment accepts as it is; or, when the workspace's storage is an S3/OSS
prefix (:mod:`pai_lab.resources.storage`), an object under it, answered as its ``s3://`` path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from sqlalchemy.orm import Session

from pai_lab.errors import BadInput
from pai_lab.workspaces import authorize

STORE_FOLDER = "eas-models"


def _relative(raw: str) -> PurePosixPath:
    """A path inside the store: relative, no '..', no empty or hidden-control parts."""
    path = PurePosixPath(raw.strip().replace("\\", "/"))
    if not raw.strip() or "\0" in raw or path.is_absolute() or any(p in ("..", ".") for p in path.parts):
        raise BadInput(f"path {raw!r}: give a relative path such as savedmodel_example/model.tar.gz (no '..')", "path")
    return path


def upload(session: Session, user: str, workspace: str, root: Path, path: str, data: bytes) -> dict:
    """Write ``data`` at ``path`` in the caller's part of the workspace's store; who may deploy may upload."""
    access = authorize(session, user, workspace, "service.deploy")
    relative = _relative(path)
    from pai_lab.resources import storage  # late: the workspace's storage builds on the store's tables

    stored = storage.upload(session, access.workspace_id, user, str(relative), data)
    if stored is not None:
        return stored
    target = root / STORE_FOLDER / access.workspace.name / user / relative
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)  # a reader never sees half a file
    except OSError as exc:
        raise BadInput(
            f"path {path!r} cannot be written: {exc.strerror}; give a shorter or plainer path", "path"
        ) from None
    return {"model_path": str(target), "size": len(data), "path": str(relative)}
