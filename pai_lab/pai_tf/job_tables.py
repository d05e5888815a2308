"""A job's ``--tables`` and ``--outputs`` (PAI-TF's ``-Dtables`` / ``-Doutputs``), resolved when it is
submitted: each names a registered dataset (``NAME``, or PAI's ``odps://PROJECT/tables/NAME``) or a table
URL (``s3://...``, or a folder or file on this machine inside the server's allowed folders). The resolved
URIs and their storage options go into the job's folder; a rank gets ``--tables=URI,...`` and
``--outputs=URI,...`` as flags and :func:`pai_lab.pai_tf.tables` / :func:`outputs` read the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, NotFound

FILE_NAME = "tables.json"
ENV_VAR = "PAI_LAB_TABLES_FILE"


def _dataset_name(ref: str) -> str | None:
    """``odps://project/tables/NAME[/pt=..]`` or a bare name -> the dataset's name; a URL or path -> None."""
    if ref.startswith("odps://"):
        parts = ref.removeprefix("odps://").split("/")
        if len(parts) < 3 or parts[1] != "tables" or not parts[2]:
            raise BadInput(f"{ref!r}: write odps://PROJECT/tables/DATASET", "tables")
        return parts[2]
    if "://" in ref or "/" in ref or ref.startswith((".", "~")):
        return None
    return ref


def resolve(session: Session, user: str, workspace: str, refs: list[str], field: str, containment) -> list[dict]:
    """Each reference as ``{"name", "uri", "storage_options"}``; errors name the field and the fix."""
    from pai_lab.datasets.service import resolve_source

    resolved = []
    for ref in refs:
        name = _dataset_name(ref)
        if name is not None:
            try:
                uri, options = resolve_source(session, user, workspace, name)
            except NotFound:
                raise BadInput(
                    f"--{field} {ref!r} is no registered dataset here; register it (pai dataset create) or give "
                    "a table URL (s3://bucket/table or a folder)",
                    field,
                ) from None
            except BadInput as exc:
                raise BadInput(f"--{field} {ref!r}: {exc.message}", field) from None
            resolved.append({"name": ref, "uri": uri.removeprefix("file://"), "storage_options": options})
        elif ref.startswith("s3://"):
            resolved.append({"name": ref, "uri": ref, "storage_options": {}})
        elif "://" in ref.removeprefix("file://"):
            raise BadInput(f"--{field} {ref!r}: a table is a dataset, s3:// URL or a local folder or file", field)
        else:
            writing = field == "outputs"
            path = containment.resolve(ref, field, must_exist=not writing, writing=writing)
            if writing:
                path.mkdir(parents=True, exist_ok=True)
            resolved.append({"name": ref, "uri": str(path), "storage_options": {}})
    return resolved


def resolve_model(session: Session, user: str, workspace: str, ref: str, containment) -> str:
    """A predictjob's ``--model``: an s3:// SavedModel, a folder here, or a registered model (NAME[:VERSION])."""
    from pai_lab.training.models import get_model_path

    if ref.startswith("s3://"):
        return ref
    if "://" in ref.removeprefix("file://") or "/" in ref or ref.startswith((".", "~")):
        path = containment.resolve(ref, "model")
        if not path.is_dir():
            raise BadInput(f"--model {ref!r} is not a SavedModel folder", "model")
        return str(path)
    try:
        return get_model_path(session, user, workspace, ref)
    except NotFound:
        raise BadInput(
            f"--model {ref!r} is no registered model here (pai model ls); give NAME[:VERSION] or a SavedModel folder",
            "model",
        ) from None


def write(session: Session, user: str, workspace: str, spec, folder: Path, containment) -> str | None:
    """Resolve the spec's tables and outputs into ``folder/tables.json``; its path (None: the job has none)."""
    if not spec.tables and not spec.outputs:
        return None
    document: dict = {
        "tables": resolve(session, user, workspace, spec.tables, "tables", containment),
        "outputs": resolve(session, user, workspace, spec.outputs, "outputs", containment),
    }
    if spec.model:
        document["model"] = resolve_model(session, user, workspace, spec.model, containment)
    if spec.kind == "predictjob":  # PAI overwrites a predict job's output table on every run
        for output in document["outputs"]:
            clear_slices(output["uri"], output["storage_options"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    path.write_text(json.dumps(document), encoding="utf-8")
    path.chmod(0o600)  # storage options may hold keys
    return str(path)


def clear_slices(uri: str, storage_options: dict) -> int:
    """Remove the slice files (``part-*``) of an output table; returns how many there were."""
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(uri, **storage_options)
    old = fs.glob(f"{path.rstrip('/')}/part-*") if fs.isdir(path) else []
    for file in old:
        fs.rm(file)
    return len(old)


def local_outputs(tables_file: str) -> list[str]:
    """The output tables that are folders on this machine (a sandboxed rank may write there)."""
    document = json.loads(Path(tables_file).read_text(encoding="utf-8"))
    return [t["uri"] for t in document["outputs"] if "://" not in t["uri"]]


def rank_flags(tables_file: str | None) -> list[str]:
    """``--tables=...`` / ``--outputs=...`` for a rank, as PAI-TF passes them."""
    if not tables_file:
        return []
    document = json.loads(Path(tables_file).read_text(encoding="utf-8"))
    flags = []
    for key in ("tables", "outputs"):
        if document[key]:
            flags.append(f"--{key}={','.join(t['uri'] for t in document[key])}")
    return flags
