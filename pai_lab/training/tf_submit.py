"""Submitting the PAI-TF command: its -D parameters become a job spec (:mod:`tf_command`), checked against
this cluster (GPUs), and its ``-Dscript`` is staged as the job's code. No HTTP here."""

from __future__ import annotations

from pathlib import Path

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


def stage_for_job(containment, spec: JobSpec, target: Path) -> str:
    """``-Dscript`` copied (or unpacked) into ``target``, a folder in the job's own folder (so it goes with
    the job, and a refused submission removes it with the rest), which the supervisor then copies into the
    job's code as it does a code_source; returns that folder."""
    if spec.code_source:
        raise BadInput("give -Dscript or --code_source, not both", "script")
    raw = spec.script.strip().removeprefix("file://")
    if "://" in raw:
        raise BadInput(
            f"-Dscript {spec.script!r}: give a path on this machine (a .py, a folder or a .tar.gz)", "script"
        )
    source = containment.resolve(raw, "script")
    entry = tf_command.entry_of(raw, spec.entryFile)
    try:
        tf_command.stage_script(Path(source), entry, target)
    except BaseException:
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        raise
    return str(target)
