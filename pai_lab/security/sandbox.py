"""What a member's code may see and hold on the server's machine: a job's ranks, a pipeline's steps and
a service's instances all run code a member wrote, and one rule keeps them apart from the control plane.

- Their environment never carries the server's own credentials (its token, Jupyter's, the Hub's), nor
  its cloud credentials; the cloud SDKs' default files and instance role are pointed at nothing.
- On a resource group's Dask worker, a service instance gets the same plan with its launch, and the mode
  this server resolved (a server that needs the sandbox sends ``bubblewrap``, also when ``auto`` chose it);
  the worker applies it with its own bubblewrap, or refuses with what to install
  (:func:`bubblewrap_on_worker`).
- On a server with more than one user (``PaiLabApp.job_sandbox`` ``auto``; ``bubblewrap``: always;
  ``off``: never) they run in a bubblewrap sandbox: the system and Python read-only, the allowed roots
  read-only with the state folder replaced by an empty one (its samples shown again), what the code
  needs of the state shown read-only, the folders it writes writable, a private ``/tmp``, ``/dev`` and
  ``/proc`` and a PID namespace of its own. A server that needs the sandbox and cannot run bubblewrap
  refuses such work with a 409 that says how to fix it.

The areas describe what their code may read and write (a plan); this module decides whether there is a
sandbox at all and builds the command line.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pai_lab.errors import BadInput, Conflict

# Credentials of the server's own process that member code inherits unless removed.
SECRET_VARIABLES = frozenset(
    {
        "PAI_LAB_TOKEN",
        "PAI_LAB_METRICS_TOKEN",
        "PAI_LAB_GATEWAY_SECRET",
        "PAI_LAB_GATEWAY_METRICS_TOKEN",
        "JUPYTER_TOKEN",
        "JPY_API_TOKEN",
        "JUPYTERHUB_API_TOKEN",
        "JPY_COOKIE_SECRET",
        "JUPYTER_COOKIE_SECRET",
    }
)
SANDBOX_MODES = ("auto", "bubblewrap", "off")

# The server's own cloud credentials (keys, profiles, roles): member code (an instance's processor, a rank,
# a pipeline step) reads a bucket with what its workspace gives it, never with these.
CLOUD_CREDENTIALS = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "OSS_ACCESS_KEY_ID",
        "OSS_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    }
)
# The cloud SDKs' defaults, which they read with no variable set: the shared credentials and config files
# under HOME (~/.aws/credentials, ~/.aws/config, Alibaba Cloud's credentials file) and the machine's instance
# role. Member code gets them pointed at nothing; the options a workspace gives (set after) stay.
NO_DEFAULT_CREDENTIALS = {
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
    "ALIBABA_CLOUD_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Read-only in every sandbox: what programs and their libraries need.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")


def scrub(env: dict[str, str]) -> dict[str, str]:
    """The environment without the server's credentials."""
    return {k: v for k, v in env.items() if k not in SECRET_VARIABLES}


def without_cloud_credentials(env: dict[str, str]) -> dict[str, str]:
    """The environment without the server's cloud credentials (variables), the SDKs' default files and
    instance role pointed at nothing. A workspace's options, added after, are what member code reads with."""
    kept = {k: v for k, v in env.items() if k not in CLOUD_CREDENTIALS}
    kept.update(NO_DEFAULT_CREDENTIALS)
    return kept


# ---------------------------------------------------------------- the decision


def _bubblewrap(settings: dict) -> str | None:
    return shutil.which(settings.get("bubblewrap_path") or "bwrap")


@functools.lru_cache(maxsize=8)
def _bubblewrap_works(binary: str) -> bool:
    # Installed is not enough: a kernel or container without user namespaces refuses it.
    try:
        probe = subprocess.run(
            [binary, "--ro-bind", "/", "/", "--unshare-pid", "--die-with-parent", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def sandbox_required(settings: dict, users: int) -> bool:
    """Whether member code must be sandboxed: always, never, or (auto) once the server has a second user.
    (Ranks on a remote cluster are never asked: they run under the workers' own OS users.)"""
    mode = settings.get("job_sandbox") or "auto"
    if mode not in SANDBOX_MODES:
        raise BadInput(f"job_sandbox is {mode!r}; an operator sets one of {', '.join(SANDBOX_MODES)}", "job_sandbox")
    return mode == "bubblewrap" or (mode == "auto" and users > 1)


JOBS = "local job ranks"
SERVICES = "service instances"


def check_sandbox_available(settings: dict, users: int, what: str = JOBS) -> str:
    """The bubblewrap binary to run member code in; a 409 that says what to do when there is none."""
    binary = _bubblewrap(settings)
    if binary and _bubblewrap_works(binary):
        return binary
    raise Conflict(unavailable_message(settings, users, what), "job_sandbox", code="sandbox_unavailable")


def unavailable_message(settings: dict, users: int, what: str = JOBS) -> str:
    binary = _bubblewrap(settings)
    why = "is not installed" if not binary else "cannot start here (no user namespaces?)"
    remote = "points pai_lab at a remote Dask cluster (PaiLabApp.dask_scheduler_address), or " if what == JOBS else ""
    return (
        f"this server has {users} users, so {what} run in a bubblewrap sandbox, and bubblewrap {why}. "
        f"An operator installs it (`apt install bubblewrap`), or {remote}accepts the risk with "
        "PaiLabApp.job_sandbox='off'"
    )


def server_users(session) -> int:
    """How many users the server has: the distinct members of all its workspaces."""
    from sqlalchemy import func, select

    from pai_lab.workspaces.tables import MemberRow

    return session.scalar(select(func.count(func.distinct(MemberRow.username)))) or 0


def sandbox_for(session, settings: dict, what: str = JOBS) -> str | None:
    """The bubblewrap binary member code runs in on this server (None: no sandbox); a 409 when one is
    needed and cannot run."""
    users = server_users(session)
    if not sandbox_required(settings, users):
        return None
    return check_sandbox_available(settings, users, what)


def base_plan(platform, binary: str) -> dict:
    """What any member code may see: the roots read-only with the state folder (and a SQLite store kept
    elsewhere) hidden, its samples shown again. Callers add what their code reads and writes."""
    from pai_lab.security.paths import SAMPLES_FOLDER, Containment

    containment = Containment.from_platform(platform)
    state = Path(os.path.realpath(platform.state_dir))
    return {
        "bwrap": binary,
        "read_only": [str(p) for p in containment.all],
        "hidden": [str(state), *(str(p) for p in containment.extra_secrets)],
        "shown_again": [str(state / SAMPLES_FOLDER)],
        "writable": [],
    }


# ---------------------------------------------------------------- on a resource group's worker


def worker_settings(settings: dict, users: int) -> dict:
    """What a plan carries to a resource group's worker besides its paths, once this server (with ``users``
    users) needs the sandbox: the mode it resolved for itself, ``bubblewrap`` whether it was set so or
    ``auto`` chose it (so a worker without bubblewrap refuses, as this server would, instead of running
    member code as its OS user), the reason, and the name of the bubblewrap program (each worker finds
    its own)."""
    mode = settings.get("job_sandbox") or "auto"
    reason = f"job_sandbox is {mode!r}" if mode != "auto" else f"this server has {users} users (job_sandbox 'auto')"
    return {"mode": "bubblewrap", "reason": reason, "bubblewrap_path": settings.get("bubblewrap_path") or ""}


def for_worker(plan: dict) -> dict:
    """``plan`` as sent to a worker: the server's paths (those missing on the worker are skipped there), the
    mode, without the server's own bubblewrap or its reason for having none."""
    return {k: v for k, v in plan.items() if k not in ("bwrap", "unavailable")}


def bubblewrap_on_worker(plan: dict) -> str | None:
    """On a worker: the bubblewrap that member code runs in under ``plan``; with mode ``bubblewrap`` (what a
    server that needs the sandbox sends, :func:`worker_settings`) and none working on this machine, a
    RuntimeError that says what to install. A plan of mode ``auto`` (from a server before the mode was
    resolved there) without one here: None, the code runs as the worker's OS user."""
    for name in (plan.get("bubblewrap_path"), "bwrap"):
        binary = _bubblewrap({"bubblewrap_path": name})
        if binary and _bubblewrap_works(binary):
            return binary
    if plan.get("mode") != "bubblewrap":
        return None
    why = "is not installed" if not _bubblewrap({"bubblewrap_path": plan.get("bubblewrap_path")}) else "cannot start"
    reason = plan.get("reason") or "job_sandbox is 'bubblewrap'"
    raise RuntimeError(
        f"{reason}, so service instances run in a bubblewrap sandbox, and bubblewrap {why} on this Dask "
        "worker; an operator installs it on every worker of the resource group (`apt install bubblewrap`), "
        "or accepts the risk with PaiLabApp.job_sandbox='off'"
    )


# ---------------------------------------------------------------- the command line


def python_paths() -> list[str]:
    """The folders this Python and pai_lab are installed in (read-only in every sandbox)."""
    import pai_lab

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(pai_lab.__file__).resolve().parents[1])}
    paths.update(p for p in sys.path if p and os.path.isabs(p))
    return sorted(p for p in paths if os.path.isdir(p))


def _bind(flag: str, path: str) -> list[str]:
    return [flag, path, path]


def sandboxed_argv(plan: dict, argv: list[str], cwd: str, extra_read_only: list[str]) -> list[str]:
    """``argv`` wrapped in bubblewrap as ``plan`` says. A mount lies over the mounts of its parent
    folders, so they are made parents first (shorter paths first): a root read-only, the state folder
    in it hidden, the samples in that shown again, a job's output in it writable. A new PID namespace
    ends every process of the sandbox when its first one ends."""
    mounts: list[tuple[str, list[str]]] = [
        ("/dev", ["--dev", "/dev"]),
        ("/proc", ["--proc", "/proc"]),
        ("/tmp", ["--tmpfs", "/tmp"]),
    ]
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            mounts.append((path, ["--symlink", os.readlink(path), path]))
        elif os.path.isdir(path):
            mounts.append((path, _bind("--ro-bind", path)))
    for path in {*python_paths(), *plan["read_only"], *extra_read_only}:
        if os.path.exists(path):
            mounts.append((path, _bind("--ro-bind", path)))
    hidden_dirs = [Path(h) for h in plan["hidden"] if os.path.isdir(h)]
    for path in plan["hidden"]:
        if any(folder in Path(path).parents for folder in hidden_dirs):
            continue  # already gone with its folder (a mount point would show its name)
        if os.path.isdir(path):
            mounts.append((path, ["--tmpfs", path]))
        elif os.path.exists(path):
            mounts.append((path, ["--ro-bind", "/dev/null", path]))
    for path in plan["shown_again"]:
        if os.path.exists(path):
            mounts.append((path, _bind("--ro-bind", path)))
    for path in plan["writable"]:
        Path(path).mkdir(parents=True, exist_ok=True)
        mounts.append((path, _bind("--bind", path)))
    for device in Path("/dev").glob("nvidia*"):  # GPUs the code was given stay usable
        mounts.append((str(device), _bind("--dev-bind", str(device))))
    mounts.sort(key=lambda mount: len(mount[0].rstrip("/")))  # stable: a later kind wins at the same path
    args = [plan["bwrap"], "--unshare-pid", "--unshare-ipc", "--die-with-parent"]
    for _path, mount in mounts:
        args += mount
    return [*args, "--chdir", cwd, "--", *argv]
