"""A throwaway `pai server` for a benchmark: its own root, token and port, output discarded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    root: Path, *extra: str, timeout: float = 120, env: dict | None = None, cwd: Path | None = None
) -> tuple[subprocess.Popen, str, str]:
    """Start `pai server --root ROOT` (plus ``extra`` flags; in ``env`` and ``cwd`` if given: another checkout's
    server); (process, URL, owner token) once it answers."""
    token = "bench-" + os.urandom(6).hex()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pai_lab",
            "server",
            "--root",
            str(root),
            "--token",
            token,
            "--port",
            str(free_port()),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        cwd=cwd,
    )
    runtime = root / ".pai_lab" / "server.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"pai server exited with {proc.returncode}")
        if runtime.exists():
            try:
                return proc, json.loads(runtime.read_text())["url"], token
            except ValueError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("pai server did not start")
