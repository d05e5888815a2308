"""What keeps a job's ranks apart from the control plane and from each other's secrets.

- A rank's environment never carries the server's credentials (its token, Jupyter's, the Hub's);
  it gets a job token instead, good for pai_lab's routes in the job's workspace with the
  submitter's rights, for as long as the job runs.
- On a server with more than one user, local ranks run in a bubblewrap sandbox: the system and
  Python read-only, the allowed roots read-only with the state folder hidden, the job's code and
  data read-only, its output and checkpoint folders writable, nothing else. Without bubblewrap
  such a server refuses local jobs and says how to fix it.
- A rank's whole process tree ends with it: its process group, anything that left the group
  (found by the job's variables in its environment), and after a control-plane crash, on restart.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from pai_lab.errors import BadInput, Conflict

log = logging.getLogger("pai_lab.training")

# Credentials of the server's own process that a rank inherits unless removed.
SECRET_VARIABLES = frozenset(
    {
        "PAI_LAB_TOKEN",
        "PAI_LAB_METRICS_TOKEN",
        "JUPYTER_TOKEN",
        "JPY_API_TOKEN",
        "JUPYTERHUB_API_TOKEN",
        "JPY_COOKIE_SECRET",
        "JUPYTER_COOKIE_SECRET",
    }
)
JOB_TOKEN_PREFIX = "pai-job-"
SANDBOX_MODES = ("auto", "bubblewrap", "off")
# Read-only in every sandbox: what programs and their libraries need.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")


def scrub(env: dict[str, str]) -> dict[str, str]:
    """The environment without the server's credentials."""
    return {k: v for k, v in env.items() if k not in SECRET_VARIABLES}


# ---------------------------------------------------------------- job tokens


@dataclass(frozen=True)
class JobGrant:
    """What a job token stands for: the submitter, in the job's workspace."""

    job_id: str
    user: str
    workspace_id: str


class JobTokens:
    """Live job tokens, in memory only: a token dies with its job or with the control plane (which
    fails every running job on restart anyway). Only their hashes are kept."""

    def __init__(self) -> None:
        self._grants: dict[str, JobGrant] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue(self, job_id: str, user: str, workspace_id: str) -> str:
        token = JOB_TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            self._grants[self._key(token)] = JobGrant(job_id, user, workspace_id)
        return token

    def revoke(self, job_id: str) -> None:
        with self._lock:
            self._grants = {k: g for k, g in self._grants.items() if g.job_id != job_id}

    def lookup(self, token: str) -> JobGrant | None:
        if not token or not token.startswith(JOB_TOKEN_PREFIX):
            return None
        key = self._key(token)
        with self._lock:
            for known, grant in self._grants.items():
                if hmac.compare_digest(known, key):
                    return grant
        return None


def grant_for(platform, token: str) -> JobGrant | None:
    """The grant a presented token carries, if it is a live job token of this control plane."""
    manager = getattr(platform, "managers", {}).get("training")
    tokens = getattr(manager, "tokens", None)
    return tokens.lookup(token) if tokens is not None else None


# ---------------------------------------------------------------- the sandbox decision


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
    """Whether local ranks must be sandboxed: always, never, or (auto) once the server has a second user.
    (Ranks on a remote cluster are never asked: they run under the workers' own OS users.)"""
    mode = settings.get("job_sandbox") or "auto"
    if mode not in SANDBOX_MODES:
        raise BadInput(f"job_sandbox is {mode!r}; an operator sets one of {', '.join(SANDBOX_MODES)}", "job_sandbox")
    return mode == "bubblewrap" or (mode == "auto" and users > 1)


def check_sandbox_available(settings: dict, users: int) -> str:
    """The bubblewrap binary to run ranks in; a 409 that says what to do when there is none."""
    binary = _bubblewrap(settings)
    if binary and _bubblewrap_works(binary):
        return binary
    why = "is not installed" if not binary else "cannot start here (no user namespaces?)"
    raise Conflict(
        f"this server has {users} users, so local job ranks run in a bubblewrap sandbox, and bubblewrap {why}. "
        "An operator installs it (`apt install bubblewrap`), or points pai_lab at a remote Dask cluster "
        "(PaiLabApp.dask_scheduler_address), or accepts the risk with PaiLabApp.job_sandbox='off'",
        "job_sandbox",
        code="sandbox_unavailable",
    )


def sandbox_plan(platform, launch: dict, binary: str) -> dict:
    """What a rank of this job may see: the roots read-only with the state folder hidden (its samples
    shown again), the job's code and data read-only, its output and checkpoint folders writable."""
    from pai_lab.security.paths import SAMPLES_FOLDER, Containment

    containment = Containment.from_platform(platform)
    state = Path(os.path.realpath(platform.state_dir))
    job_dir = Path(launch["job_dir"])
    writable = [launch["output_dir"]]
    if "://" not in launch["checkpoint_dir"]:
        writable.append(launch["checkpoint_dir"])
    read_only = [str(p) for p in containment.all]
    return {
        "bwrap": binary,
        "read_only": read_only
        + [launch["mounts"][m] for m in launch.get("mounts", {}) if "://" not in launch["mounts"][m]],
        "hidden": [str(state), *(str(p) for p in containment.extra_secrets)],
        "shown_again": [str(state / SAMPLES_FOLDER), str(job_dir / "code"), str(job_dir / "data")],
        "writable": writable,
    }


# ---------------------------------------------------------------- on the worker


def _python_paths() -> list[str]:
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
    ends every process of the rank when its first one ends."""
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
    for path in {*_python_paths(), *plan["read_only"], *extra_read_only}:
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
    for device in Path("/dev").glob("nvidia*"):  # GPUs the rank was given stay usable
        mounts.append((str(device), _bind("--dev-bind", str(device))))
    mounts.sort(key=lambda mount: len(mount[0].rstrip("/")))  # stable: a later kind wins at the same path
    args = [plan["bwrap"], "--unshare-pid", "--unshare-ipc", "--die-with-parent"]
    for _path, mount in mounts:
        args += mount
    return [*args, "--chdir", cwd, "--", *argv]


# ---------------------------------------------------------------- process trees


def job_processes(*, job_ids: set[str] | None = None, pod: str | None = None, output_under: str | None = None) -> list:
    """This machine's processes that belong to a job's rank, known by the variables every rank's
    environment carries (a process that left the rank's group or session still has them)."""
    import psutil

    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        job = env.get("PAI_LAB_JOB_ID")
        if not job or (job_ids is not None and job not in job_ids) or (pod and env.get("PAI_LAB_POD") != pod):
            continue
        if output_under and not env.get("PAI_LAB_OUTPUT_DIR", "").startswith(output_under):
            continue
        found.append(proc)
    return found


def end_processes(procs: list) -> int:
    """SIGKILL each process (they are leftovers: their rank has ended). Returns how many were alive."""
    import psutil

    ended = 0
    for proc in procs:
        try:
            proc.kill()
            ended += 1
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
    return ended
