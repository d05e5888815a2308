"""Where a service's model, processor and warm-up data are on this machine: local paths used in
place (checked by the server's containment policy), object-store paths and archives fetched once
into the cache, a registered model found by reference. Checked at create and modify, so a bad path
fails with a message naming the key instead of an instance that cannot start."""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, NotFound
from pai_lab.serving.processors.catalog import resolve_processor
from pai_lab.serving.remote import ARCHIVES, fetch_remote, is_remote, unpack_single_archive
from pai_lab.serving.schemas import ServiceSpec


def _fetch(uri: str, spec: ServiceSpec, cache: Path, what: str, containment=None, store=None, objects=None) -> Path:
    """A local path for ``uri``. Local folders and files are used in place; http(s) and object-store
    URLs are copied once into the cache (see :mod:`pai_lab.serving.remote`); archives (.tar.gz, .tar,
    .bz2, .zip) are unpacked. ``containment`` (the server's policy) checks what a member names; ``store``
    gives the s3fs options of a URI in the workspace's model store (None: not in it); ``objects`` (the
    policy too, also for a registered model's URI) refuses an object the server would read with its own
    credentials."""
    if containment is not None:
        containment.check(uri, what)  # refused alike whether or not it exists; http(s) only where allowed
    if is_remote(uri):
        options = store(uri) if store is not None and not spec.oss_endpoint else None
        if objects is not None and "://" in uri and not uri.startswith(("http://", "https://")):
            objects.object_options(uri, options, what)  # an oss_endpoint alone carries no credentials
        return fetch_remote(uri, spec.oss_endpoint, cache, what, options)
    local = Path(uri.removeprefix("file://")).expanduser().resolve()
    if not local.exists():
        raise BadInput(f"{what} {uri!r} does not exist on the server", what)
    if not (local.is_file() and local.name.endswith(ARCHIVES)):
        return local
    stat = local.stat()  # a changed archive is unpacked again
    target = cache / hashlib.sha1(f"{local}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    if target.exists():
        return target
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".get-"))
    try:
        shutil.copy(local, tmp / local.name)
        unpack_single_archive(tmp)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve(session: Session, user: str, workspace: str, spec: ServiceSpec, cache: Path, containment=None) -> dict:
    """Where the model and processor are on this machine, checked now so that create fails
    with a clear message instead of an instance that cannot start."""
    cache.mkdir(parents=True, exist_ok=True)
    resolved: dict[str, Any] = {}
    model_dir = None
    store = _model_store_reader(session, user, workspace)
    own = containment  # the member's own paths are checked; a registered model's path is the server's
    if spec.model_path:
        path = spec.model_path
        if containment is not None and "://" not in path and ("/" in path or path.startswith(("~", "."))):
            containment.resolve(path, "model_path", must_exist=False)  # before existence: no oracle
        if "://" not in path and not Path(path).expanduser().exists():
            own = None
            from pai_lab.training.models import get_model_path

            try:
                path = get_model_path(session, user, workspace, path)
            except NotFound:
                raise BadInput(
                    f"model_path {spec.model_path!r} is neither a path nor a model of this workspace "
                    "(name:version, name, or a training job id); `pai models ls` lists them",
                    "model_path",
                ) from None
        model_dir = _fetch(path, spec, cache, "model_path", own, store, containment)
    resolved.update(
        resolve_processor(
            spec, model_dir, lambda uri: _fetch(uri, spec, cache, "processor_path", containment, store, containment)
        )
    )
    warm_up = spec.warm_up_data_path
    resolved["warm_up"] = _warm_up_requests(warm_up, spec, cache, containment) if warm_up else []
    return resolved


def _model_store_reader(session: Session, user: str, workspace: str):
    """uri -> the s3fs options of the workspace's model store when ``uri`` lies in it (else None)."""
    from pai_lab.resources import storage
    from pai_lab.workspaces import authorize

    workspace_id = authorize(session, user, workspace, "service.read").workspace_id
    return lambda uri: storage.options_for(session, workspace_id, uri)


def _warm_up_requests(uri: str, spec: ServiceSpec, cache: Path, containment=None) -> list[str]:
    """Warm-up file: ``.bin``/``.pb`` one serialized request; ``.txt``/``.jsonl`` one request
    body per line; ``.json`` one JSON request. Returned base64-encoded for the gateway."""
    folder = _fetch(uri, spec, cache, "warm_up_data_path", containment, objects=containment)
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise BadInput("warm_up_data_path holds no file", "warm_up_data_path")
    path = files[0]
    data = path.read_bytes()
    bodies = [line for line in data.splitlines() if line.strip()] if path.suffix in (".txt", ".jsonl") else [data]
    return [base64.b64encode(b).decode() for b in bodies]
