"""One serving gateway per team folder. The control planes over one root (one per user under JupyterHub)
share the gateway the first of them started, instead of each starting a copy of every service with its
own endpoints, its own autoscaling, and the changes made on the others never applied.

The server that started the gateway owns it (the gateway ends with that server); the others attach: they
push the store's desired state to it and read its status with the admin secret it was started with, kept
0600 beside it. When it ends, the first server to notice starts one of its own on the same port, under
``gateway.lock``, and the rest attach to that one. No HTTP of pai_lab's here: files and processes."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil

SECRET_FILE = "gateway.secret"
LOCK_FILE = "gateway.lock"
RECORD_FILE = "gateway.json"  # written by the gateway itself once it listens (serving/gateway/entry.py)
LOCK_WAIT_SECONDS = 120.0  # a gateway starts in a few seconds; a server waits this long for another's


def this_host() -> str:
    return socket.gethostname()


def record(state_dir: Path) -> dict | None:
    try:
        info = json.loads((state_dir / RECORD_FILE).read_text())
        return {"port": int(info["port"]), "pid": int(info["pid"]), "hostname": str(info.get("hostname", ""))}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def alive(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` is a gateway process of this state folder, running now."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        command = proc.cmdline()
    except (psutil.Error, OSError):
        return False
    return "pai_lab.serving.gateway" in command and str(state_dir) in command


def find(state_dir: Path, own_pid: int) -> tuple[int, int, str] | None:
    """Another server's live gateway of this folder on this machine: (pid, port, its admin secret)."""
    info = record(state_dir)
    if info is None or info["pid"] == own_pid or info["hostname"] not in ("", this_host()):
        return None
    if not alive(info["pid"], state_dir):
        return None
    try:
        secret = (state_dir / SECRET_FILE).read_text().strip()
    except OSError:
        return None  # started by a server of another OS user: not ours to drive
    return (info["pid"], info["port"], secret) if secret else None


def keep_secret(state_dir: Path, secret: str) -> None:
    """Leave the gateway's admin secret where the other servers of this folder (same OS user) read it."""
    path = state_dir / SECRET_FILE
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(secret)
    tmp.replace(path)


@contextlib.contextmanager
def turn(state_dir: Path) -> Iterator[None]:
    """One server at a time finds or starts the folder's gateway."""
    from pai_lab.store.migration_lock import file_lock

    with file_lock(state_dir / LOCK_FILE, LOCK_WAIT_SECONDS, "the serving gateway's start"):
        yield
