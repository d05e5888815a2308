"""Which control plane supervises a job or a pipeline run.

Several control planes may share one store: a team under JupyterHub runs one server per user, each a
control plane over the same database and team folder (docs/jupyterhub.md). A job (a pipeline run) is
supervised (driven) by the one it was submitted from, which writes its claim (host, process id, process
start time) into the job's (run's) folder when its supervisor (driver) starts. A control plane that starts
reconciles only the active ones whose supervisor is gone: the claim names a process of this host that no
longer runs, or there is no claim. A claim of another host is taken as live: only that host can tell, and
failing a running job on a guess is worse than leaving an orphan listed as active.

A pipeline run's claim is in its row instead (:func:`this_claim`, with a lease its driver renews), so that
taking it is a conditional update only one of two racing servers wins (:func:`lapsed` says when a claim
may be taken: one of this host is kept while its process runs, one of another host while its lease does).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path

import psutil

CLAIM = "supervisor.json"
LEASE_SECONDS = 60.0  # a claim of another host not renewed for this long has lapsed (its holder is gone)
RENEW_SECONDS = 10.0  # how often a holder renews it


def this_control_plane() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": psutil.Process().create_time()}


def claim(job_dir: str | os.PathLike | None) -> None:
    """Record in the job's folder that this process supervises the job (atomically: a reader sees the
    old claim or the new one)."""
    if not job_dir:
        return
    folder = Path(job_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{CLAIM}.{os.getpid()}"
    tmp.write_text(json.dumps(this_control_plane()))
    tmp.replace(folder / CLAIM)


def supervised_elsewhere(job_dir: str | os.PathLike | None) -> bool:
    """Whether another control plane (not this process) that still runs supervises the job in ``job_dir``."""
    if not job_dir:
        return False
    try:
        held = json.loads((Path(job_dir) / CLAIM).read_text())
        host, pid, started = str(held["host"]), int(held["pid"]), float(held["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # never claimed (or unreadable): nobody to leave it to
    if host == socket.gethostname() and pid == os.getpid():
        return False
    return not ended({"host": host, "pid": pid, "started": started})


def ended(held: dict) -> bool:
    """Whether the control plane a claim names (as :func:`this_control_plane` writes it) is known to have
    ended: a process of this host that no longer runs, or a new process with its id. One of another host
    is never known to have ended."""
    if str(held["host"]) != socket.gethostname():
        return False
    try:
        return abs(psutil.Process(int(held["pid"])).create_time() - float(held["started"])) >= 1.0
    except psutil.Error:
        return True


def this_claim() -> str:
    """This control plane as a claim held in a row (compared as written: one text per process)."""
    return json.dumps(this_control_plane(), sort_keys=True)


def lapsed(claim: str, lease_until: datetime | None, now: datetime) -> bool:
    """Whether a claim held in a row (:func:`this_claim`'s text, with its lease) names no control plane
    that still holds it: none, one that is not a claim, one of this host known to have ended, or one of
    another host whose lease was not renewed by ``now``."""
    try:
        held = json.loads(claim) if claim else None
        here = held is not None and str(held["host"]) == socket.gethostname()
        if held is None or (here and ended(held)):
            return True
    except (ValueError, KeyError, TypeError):
        return True
    return not here and (lease_until is None or lease_until <= now)
