"""What keeps a job's ranks apart from the control plane and from each other's secrets.

- A rank's environment never carries the server's credentials (its token, Jupyter's, the Hub's);
  it gets a job token instead, good for pai_lab's routes in the job's workspace with the
  submitter's rights, for as long as the job runs.
- On a server with more than one user, local ranks run in the bubblewrap sandbox of
  :mod:`pai_lab.security.sandbox` (whose rule decides it for services and pipeline steps too): here,
  what a rank may see in it, its code and data read-only, its output and checkpoint folders writable.
- A rank's whole process tree ends with it: its process group, anything that left the group
  (found by the job's variables in its environment), and after a control-plane crash, on restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

# the one sandbox rule, used here under the names the training and pipeline code has always called
from pai_lab.security.sandbox import (
    SANDBOX_MODES,
    SECRET_VARIABLES,
    SYSTEM_PATHS,
    base_plan,
    check_sandbox_available,
    sandbox_required,
    sandboxed_argv,
    scrub,
)

__all__ = [
    "JOB_TOKEN_PREFIX",
    "SANDBOX_MODES",
    "SECRET_VARIABLES",
    "SYSTEM_PATHS",
    "JobGrant",
    "JobTokens",
    "check_sandbox_available",
    "end_processes",
    "grant_for",
    "job_processes",
    "sandbox_plan",
    "sandbox_required",
    "sandboxed_argv",
    "scrub",
]

log = logging.getLogger("pai_lab.training")

JOB_TOKEN_PREFIX = "pai-job-"


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


# ---------------------------------------------------------------- the sandbox


def sandbox_plan(platform, launch: dict, binary: str) -> dict:
    """What a rank of this job may see: the roots read-only with the state folder hidden (its samples
    shown again), the job's code and data read-only, its output and checkpoint folders writable."""
    job_dir = Path(launch["job_dir"])
    writable = [launch["output_dir"]]
    if "://" not in launch["checkpoint_dir"]:
        writable.append(launch["checkpoint_dir"])
    plan = base_plan(platform, binary)
    plan["read_only"] += [launch["mounts"][m] for m in launch.get("mounts", {}) if "://" not in launch["mounts"][m]]
    plan["shown_again"] += [str(job_dir / "code"), str(job_dir / "data")]
    plan["writable"] = writable
    return plan


# ---------------------------------------------------------------- process trees


def job_processes(*, job_ids: set[str] | None = None, pod: str | None = None, output_under: str | None = None) -> list:
    """This machine's processes that belong to a job's rank, known by the variables every rank's
    environment carries (a process that left the rank's group or session still has them)."""
    import psutil

    found = []
    me = os.getpid()
    for proc in _with_job_variables(psutil):
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


def _with_job_variables(psutil) -> list:
    """The processes whose environment may name a job: on Linux only those whose /proc environ holds
    PAI_LAB_JOB_ID (read raw, ~10x cheaper than psutil parsing every process's environment: this runs as
    each rank ends, before its job can), elsewhere every process."""
    try:
        names = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return list(psutil.process_iter())
    procs = []
    for name in names:
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if b"PAI_LAB_JOB_ID=" not in f.read():
                    continue
            procs.append(psutil.Process(int(name)))
        except (OSError, psutil.Error):
            continue
    return procs


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
