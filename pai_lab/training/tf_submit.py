"""Submitting the PAI-TF command: its -D parameters become a job spec (:mod:`tf_command`), checked against
this cluster (GPUs), and its ``-Dscript`` is staged as the job's code. No HTTP here."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from sqlalchemy.orm import Session

from pai_lab.errors import BadInput
from pai_lab.security.paths import Containment
from pai_lab.training import tf_command
from pai_lab.training.schemas import JobDetail, JobSpec, PaiTfCommand
from pai_lab.workspaces import authorize


def cluster_has_gpus(platform, address: str = "") -> bool:
    """Whether a worker of the cluster (a resource group's scheduler ``address``; "" the default) has GPUs."""
    from pai_lab.training.manager import get_manager

    return any(int(w.get("gpus", 0)) > 0 for w in get_manager(platform).workers(address).values())


def submit_command(session: Session, platform, user: str, workspace: str, command: PaiTfCommand) -> JobDetail:
    """Run the PAI-TF command as a job; the parameters it ignores here come back as the job's warnings."""
    from pai_lab.resources.service import group_of
    from pai_lab.training import spec as specs
    from pai_lab.training.submit import submit_job
    from pai_lab.training.tables import JobRow

    access = authorize(session, user, workspace, "job.submit")
    _group, address = group_of(session, platform, access.workspace_id)  # the cluster its ranks will run on
    if command.name not in tf_command.ALGORITHMS:
        raise BadInput(f"-name {command.name!r}: the PAI-TF algorithms are {', '.join(tf_command.ALGORITHMS)}", "name")
    params = command.model_dump(exclude={"name"})
    values, notes = tf_command.job_values(params, cluster_has_gpus(platform, address))
    for bucket in command.buckets.split(",") if command.buckets.strip() else []:
        if "://" not in bucket:  # a folder on this machine: one the server lets members read
            Containment.from_platform(platform).resolve(bucket.strip(), "buckets")
    spec = specs.build_spec(values)
    job = submit_job(session, platform, user, workspace, spec)
    if notes:
        row = session.get(JobRow, job.id)
        assert row is not None  # recorded just now, in this transaction
        row.warnings = [*(row.warnings or []), *notes]
        session.flush()
        job = job.model_copy(update={"warnings": list(row.warnings)})
    return job


MAX_SCRIPT_OBJECT_BYTES = 256 << 20  # a -Dscript fetched from s3:// or oss://, packed


def stage_for_job(
    containment, spec: JobSpec, target: Path, session: Session | None = None, workspace_id: str = ""
) -> str:
    """``-Dscript`` copied (or unpacked) into ``target``, a folder in the job's own folder (so it goes with
    the job, and a refused submission removes it with the rest), which the supervisor then copies into the
    job's code as it does a code_source; returns that folder. An ``s3://`` or ``oss://`` script is fetched
    first, with the storage options of the workspace (``workspace_id``) whose model store holds it."""
    if spec.code_source:
        raise BadInput("give -Dscript or --code_source, not both", "script")
    raw = spec.script.strip().removeprefix("file://")
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if scheme not in ("", "s3", "oss"):
        raise BadInput(
            f"-Dscript {spec.script!r}: give a path on this machine or an s3:// or oss:// object "
            "(a .py, a folder or a .tar.gz)",
            "script",
        )
    entry = tf_command.entry_of(raw, spec.entryFile)
    fetched = target.parent / "script-object"
    try:
        if scheme:
            source = _fetch(containment, raw, session, workspace_id, fetched)
        else:
            source = Path(containment.resolve(raw, "script"))
        tf_command.stage_script(source, entry, target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(fetched, ignore_errors=True)
    return str(target)


def _fetch(containment, uri: str, session: Session | None, workspace_id: str, folder: Path) -> Path:
    """The object ``uri`` downloaded into ``folder``, read with the workspace's storage options only (never
    the server's own credentials: :meth:`Containment.object_options`), at most MAX_SCRIPT_OBJECT_BYTES."""
    from pai_lab.datasets.sources import filesystem, object_error, parse_object_uri
    from pai_lab.resources.storage import options_for

    declared = options_for(session, workspace_id, uri) if session is not None else None
    options = containment.object_options(uri, declared, "script")
    try:
        location = parse_object_uri(uri, options)
    except BadInput as exc:
        raise BadInput(f"-Dscript: {exc.message}", "script") from None
    name = PurePosixPath(location.prefix).name
    if not location.prefix or location.prefix.endswith("/") or not name.endswith((".tar.gz", ".tgz", ".tar", ".py")):
        raise BadInput(
            f"-Dscript {uri!r}: an object-store script is one object, a .py or a .tar.gz (with -DentryFile)", "script"
        )
    fs = filesystem(location)
    key = f"{location.bucket}/{location.prefix}"
    try:
        size = int(fs.info(key).get("size") or 0)
        if size > MAX_SCRIPT_OBJECT_BYTES:
            raise BadInput(f"-Dscript {uri!r} is {size} bytes; at most {MAX_SCRIPT_OBJECT_BYTES} (pack less)", "script")
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / name
        with fs.open(key, "rb") as src, open(local, "wb") as dst:
            copied = 0
            while chunk := src.read(1 << 20):
                copied += len(chunk)
                if copied > MAX_SCRIPT_OBJECT_BYTES:
                    raise BadInput(f"-Dscript {uri!r}: more than {MAX_SCRIPT_OBJECT_BYTES} bytes", "script")
                dst.write(chunk)
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - each store raises its own kind
        error = object_error(exc, location)
        raise BadInput(f"-Dscript: {error.message}", "script" if error.field == "source" else error.field) from None
    return local
