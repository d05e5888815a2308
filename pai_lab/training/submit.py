"""Submitting a training job: resolve its code and data sources, check its command, record it (state
Creating). Once the record commits, the manager (:mod:`pai_lab.training.manager`) launches it. No HTTP here.
"""

from __future__ import annotations

import re
import secrets
import shlex
import shutil
import string
from pathlib import Path

from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, NotFound
from pai_lab.resources.service import group_of
from pai_lab.security.paths import Containment
from pai_lab.store import after_commit, utcnow
from pai_lab.training import isolation
from pai_lab.training import spec as specs
from pai_lab.training.images import check_images
from pai_lab.training.records import job_detail
from pai_lab.training.runtime import resolve_mounts, split_command
from pai_lab.training.schemas import JobDetail, JobSpec, Pod
from pai_lab.training.tables import JobRow
from pai_lab.workspaces import authorize

KERAS3_HINT = (
    "Keras 3 model.fit does not run under MultiWorkerMirroredStrategy in this TensorFlow "
    '("Attempt to convert a value (PerReplica...)"): use legacy Keras (`import tf_keras as keras`, '
    "pip install tf-keras, or prefix the command with TF_USE_LEGACY_KERAS=1) or a custom training loop"
)
_SHELL_BUILTINS = {
    "cd",
    "export",
    "set",
    "source",
    ".",
    "exec",
    "echo",
    "true",
    "false",
    "test",
    "[",
    "sleep",
    "exit",
    "env",
    "unset",
    "ulimit",
    "umask",
    "trap",
    "wait",
    "eval",
    ":",
}
_GIT_URL = re.compile(r"^(https?://|git@|ssh://|git://)|\.git/?$")


def new_job_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return f"dlc-{utcnow():%Y%m%d%H%M%S}-" + "".join(secrets.choice(alphabet) for _ in range(8))


# ---------------------------------------------------------------- submit


def is_git_url(source: str) -> bool:
    return bool(_GIT_URL.search(source))


def _resolve_data_sources(session: Session, user: str, workspace: str, names: list[str]) -> tuple[dict, list, list]:
    """Data sources -> (mounts, bucket URIs, resolved sources to snapshot). A dataset with a folder or a
    bucket is also mounted (at /root/data, as in DLC); every source is read through the snapshot."""
    if not names:
        return {}, [], []
    from pai_lab.datasets.records import DEFAULT_MOUNT
    from pai_lab.datasets.service import get_dataset, resolve_source
    from pai_lab.training import data

    resolved = data.resolve(session, user, workspace, names)
    mounts, buckets = {}, []
    folders = [(info["dataset"], info["name"]) for info, _lines in resolved if info["kind"] == "dataset"]
    for name, ref in folders:
        try:
            uri, _options = resolve_source(session, user, workspace, name)
        except BadInput:
            continue  # samples, inline items, labeling exports: no folder to mount
        own_mount = get_dataset(session, user, workspace, name).mount_path
        local = uri.removeprefix("file://")
        target = local if "://" not in local else uri
        if own_mount and own_mount.rstrip("/") != DEFAULT_MOUNT.rstrip("/"):
            mount = own_mount.rstrip("/")  # the data source's own --mount_path, as in DLC
        else:
            mount = "/root/data" if len(names) == 1 else f"/root/data/{ref}"
        mounts[mount] = target
        buckets.append(uri if uri.endswith("/") else uri + "/")
    return mounts, buckets, resolved


def _resolve_code_source(
    session: Session, user: str, workspace: str, ref: str, containment=None
) -> tuple[str, str, str]:
    """A local folder, a git URL, or a registered code source (`pai dlc create code_source`) ->
    (folder or URL, branch, mount path). Folders go through the server's containment policy."""
    if not ref:
        return "", "", "/root/code"
    if is_git_url(ref):
        return ref, "", "/root/code"
    if containment is not None and ("/" in ref or ref.startswith(("~", "."))):
        folder = containment.resolve(ref, "code_source")  # refused alike whether or not it exists
        if folder.is_dir():
            return str(folder), "", "/root/code"
    elif containment is None and Path(ref).expanduser().is_dir():
        return str(Path(ref).expanduser().resolve()), "", "/root/code"
    from pai_lab.datasets.code_sources import get_code_source

    try:
        source = get_code_source(session, user, workspace, ref)
    except NotFound:
        pass
    else:
        return source.code_repo, source.code_branch, source.mount_path.rstrip("/") or "/root/code"
    if (
        containment is not None
        and "/" not in ref
        and containment.contains(containment.root_dir / ref)
        and (containment.root_dir / ref).is_dir()
    ):  # a folder at the root, named like a code source
        return str(containment.resolve(ref, "code_source")), "", "/root/code"
    raise BadInput(
        f"--code_source {ref!r} is neither a folder on this machine, a git URL, nor a registered code "
        "source (`pai dlc get code_source`)",
        "code_source",
    )


def _read_hyperparameters(path: str) -> list[str]:
    if not path:
        return []
    import fsspec

    try:
        with fsspec.open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except (OSError, ValueError) as exc:
        raise BadInput(f"--hyperParameters: cannot read {path!r}: {exc}", "hyperParameters") from None
    return specs.parse_hyperparameters(text, f"hyperParameters file {path}")


def keras_warnings(spec: JobSpec, command: str) -> list[str]:
    """Spot a script that will hit the Keras 3 + MultiWorkerMirroredStrategy failure, before launch."""
    if spec.workers + spec.masters + int(spec.chief) < 2 or "TF_USE_LEGACY_KERAS=1" in command:
        return []
    found = []
    for token in re.findall(r"[^\s'\"]+\.py\b", command):
        try:
            source = Path(token).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        legacy = "tf_keras" in source or "TF_USE_LEGACY_KERAS" in source
        keras3 = re.search(r"^\s*(import keras\b|from keras\b)|tf\.keras\.|tensorflow\.keras", source, re.MULTILINE)
        if "MultiWorkerMirroredStrategy" in source and ".fit(" in source and keras3 and not legacy:
            found.append(f"{Path(token).name}: {KERAS3_HINT}")
    return found


def _check_command_locally(command: str, cwd: str, sandbox=None) -> None:
    """On a local cluster the workers share this machine: a missing program or script is caught now, and
    a script a sandboxed rank could not see (``sandbox``: the containment policy it follows)."""
    _assignments, argv = split_command(command)
    if argv is None:
        return
    program = argv[0]
    if program in _SHELL_BUILTINS:
        return
    if "/" in program:
        exists = (Path(cwd) / program).exists()
    else:
        import os
        import sys

        path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        exists = shutil.which(program, path=path) is not None
    if not exists:
        raise BadInput(
            f"command: {program!r} is not found on the workers' PATH; install it or give its full path", "command"
        )
    if Path(program).name.startswith("python") and len(argv) > 1 and argv[1].endswith(".py"):
        script = Path(cwd) / argv[1]
        if not script.exists():
            raise BadInput(
                f"command: the script {argv[1]!r} does not exist (looked in {cwd}); check the path "
                "or give --code_source",
                "command",
            )
        if sandbox is not None and not sandbox.contains(script):
            seen = ", ".join(str(r) for r in sandbox.all)
            raise BadInput(
                f"command: the script {argv[1]!r} lies outside the folders a rank sees in this "
                f"server's sandbox ({seen}); move it there or give --code_source",
                "command",
            )


def submit_job(session: Session, platform, user: str, workspace: str, spec: JobSpec) -> JobDetail:
    """Check and record a job (state Creating); once the record commits, the manager launches it."""
    from pai_lab.training.manager import get_manager  # late: the manager builds on the job records

    manager = get_manager(platform)
    access = authorize(session, user, workspace, "job.submit")
    group, scheduler_address = group_of(session, platform, access.workspace_id)  # the workspace's resource group
    local_cluster = manager.local and not scheduler_address
    # the same checks as the CLI, for REST callers too
    spec = specs.build_spec(
        spec.model_dump(), max_ranks=platform.settings.get("max_job_ranks") or specs.DEFAULT_MAX_RANKS
    )
    # each role's chosen environment: its ranks run with that interpreter; one they could not run in is refused
    environments = check_images(spec.model_dump())
    pythons = {role: e["python"] for role, e in environments.items() if "python" in e}
    containers = {role: e["image"] for role, e in environments.items() if "image" in e}
    if containers and spec.thirdparty_libs:
        raise BadInput(
            "thirdparty_libs: a Docker *_image brings its own packages; install them in the image", "thirdparty_libs"
        )
    if spec.kind == "pytorchjob":
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise BadInput(
                "pytorchjob needs PyTorch on the workers: `pip install torch` there, or submit a tfjob", "kind"
            )
    containment = Containment.from_platform(platform)
    if spec.checkpointDir and "://" not in spec.checkpointDir:  # ranks write there: never the state folder
        containment.resolve(spec.checkpointDir, "checkpointDir", must_exist=False, writing=True)
    if spec.hyperParameters:
        # read by the control plane itself, with no storage options: a bucket only under an allowed prefix
        hyper = str(containment.readable(spec.hyperParameters, "hyperParameters"))
        spec = spec.model_copy(update={"hyperParameters": hyper})
    job_id = new_job_id()
    work_dir = Path(platform.state_dir) / "jobs" / job_id
    try:
        if spec.script:  # PAI-TF -Dscript: staged, then copied into the job's code as a code_source is
            from pai_lab.training.tf_submit import stage_for_job

            code, branch, code_mount = (
                stage_for_job(containment, spec, work_dir / "script", session, access.workspace_id),
                "",
                "/root/code",
            )
        else:
            code, branch, code_mount = _resolve_code_source(
                session, user, workspace, spec.code_source.strip(), containment
            )
        mounts, buckets, sources = _resolve_data_sources(session, user, workspace, spec.data_sources)
        sandbox = _sandbox_for(session, platform.settings) if local_cluster else None
        try:
            job = _record_job(
                job_id,
                session,
                platform,
                user,
                access,
                spec,
                code,
                branch,
                code_mount,
                mounts,
                buckets,
                sources,
                local_cluster,
                sandbox,
                # where and with what the ranks run: each role's interpreter, the group's cluster
                {
                    "pythons": pythons,
                    "containers": containers,
                    "resource_group": group,
                    "scheduler_address": scheduler_address,
                },
            )
        finally:
            for _info, lines in sources:
                lines.close()  # spooled lines: copied into the job's folder, or dropped with a refused job
    except BaseException:
        # a refused job leaves nothing of itself in the state folder (a staged -Dscript, a data snapshot)
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    # a supervisor reads the job's row: it starts only once the row is there for it to read
    after_commit(session, lambda: manager.launch(job.id))
    return job


def _sandbox_for(session: Session, settings: dict) -> str | None:
    """The bubblewrap binary local ranks run in, when this server's users call for one (None: no sandbox)."""
    from pai_lab.security.sandbox import sandbox_for

    return sandbox_for(session, settings)


def _record_job(
    job_id: str,
    session: Session,
    platform,
    user: str,
    access,
    spec: JobSpec,
    code: str,
    branch: str,
    code_mount: str,
    mounts: dict,
    buckets: list,
    sources: list,
    local_cluster: bool,
    sandbox: str | None,
    placement: dict,
) -> JobDetail:
    hyper = _read_hyperparameters(spec.hyperParameters)
    work_dir = Path(platform.state_dir) / "jobs" / job_id
    output_dir = work_dir / "output"
    checkpoint_dir = spec.checkpointDir or str(output_dir)
    code_dir = str(work_dir / "code") if code else ""
    launch = {
        "job_id": job_id,
        "kind": spec.kind,
        "command": spec.command,
        "mounts": mounts,
        "buckets": buckets,
        "work_dir": str(platform.root_dir),
        "job_dir": str(work_dir),
        "output_dir": str(output_dir),
        "model_dir": str(output_dir / "model"),
        "checkpoint_dir": checkpoint_dir,
        "code_source": code,
        "code_dir": code_dir,
        "code_branch": branch,
        "code_mount": code_mount,
        "hyperparameters": hyper,
        "user_flags": shlex.split(spec.userDefinedParameters) if spec.userDefinedParameters else [],
        "thirdparty_libs": spec.thirdparty_libs,
        **placement,  # pythons: role -> its *_image's interpreter; resource_group and its scheduler_address
    }
    if sandbox:
        launch["sandbox"] = isolation.sandbox_plan(platform, launch, sandbox)
    if launch["containers"]:  # a container sees what a sandboxed rank sees, sandbox or not
        launch["container_view"] = launch.get("sandbox") or isolation.sandbox_plan(platform, launch, "")
    seen_code = code if code and not is_git_url(code) else code_dir or str(platform.root_dir)
    resolved = resolve_mounts(spec.command, {**mounts, code_mount: seen_code})
    if local_cluster and not (code and is_git_url(code)):
        _check_command_locally(
            resolved,
            seen_code if code else str(platform.root_dir),
            # a -Dscript is copied into the job's code, which its ranks see
            Containment.from_platform(platform) if sandbox and not spec.script else None,
        )
    warnings = keras_warnings(spec, resolved)
    pods = [
        Pod(name=plan.pod(job_id), role=plan.role, index=plan.index).model_dump() for plan in specs.plan_ranks(spec)
    ]
    if sources:
        from pai_lab.training import data

        launch["data_file"] = str(data.write_snapshot(work_dir / "data", sources))
    from pai_lab.pai_tf import job_tables  # --tables / --outputs: datasets or URLs, resolved now

    tables_file = job_tables.write(
        session, user, access.workspace_id, spec, work_dir / "data", Containment.from_platform(platform)
    )
    if tables_file:
        launch["tables_file"], launch["table_flags"] = tables_file, job_tables.rank_flags(tables_file)
        if "sandbox" in launch:  # ranks write their local output tables
            launch["sandbox"]["writable"] += job_tables.local_outputs(tables_file)
    now = utcnow()
    row = JobRow(
        id=job_id,
        workspace_id=access.workspace_id,
        name=spec.name,
        kind=spec.kind,
        state="Creating",
        reason="",
        spec=spec.model_dump(),
        launch=launch,
        pods=pods,
        history=[{"state": "Creating", "at": now.isoformat(), "reason": ""}],
        warnings=warnings,
        work_dir=str(work_dir),
        output_dir=str(output_dir),
        created_by=user,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return job_detail(row)
