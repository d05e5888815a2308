"""Finding the control plane from a kernel, a terminal or a script.

Order (DESIGN.md): ``PAI_LAB_URL`` + ``PAI_LAB_TOKEN``; the Jupyter server this process runs
under (jupyter_server runtime files); the ``<root>/.pai_lab/server.json`` of a ``pai server``.
"""

from __future__ import annotations

import atexit
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pai_lab.errors import ServerNotFound

HOW_TO_START = (
    "no pai_lab server found. Start one with `pai server` (or open JupyterLab with pai_lab installed), "
    "or set PAI_LAB_URL and PAI_LAB_TOKEN"
)
HOW_TO_START_PYTHON = (
    "no pai_lab server found from {cwd}. Start one for this folder with `pai_lab.connect(start=True)` "
    "(it stops when this Python process exits), or run `pai server` in a terminal there, open JupyterLab "
    "with pai_lab installed, or set PAI_LAB_URL and PAI_LAB_TOKEN"
)


# where pai_lab's REST API lies below a server's base URL
API_PATH = "pai-lab/api/v1"


@dataclass
class ServerInfo:
    url: str
    token: str
    source: str

    @property
    def api(self) -> str:
        return self.url.rstrip("/") + "/" + API_PATH


def _alive(pid) -> bool:
    import psutil  # loaded only when looking for a server (with PAI_LAB_URL set, a `pai` call needs none)

    try:
        return bool(pid) and psutil.pid_exists(int(pid))
    except (TypeError, ValueError):
        return False


def _ancestors() -> list[int]:
    import psutil

    pids = []
    try:
        proc = psutil.Process()
        while proc is not None:
            pids.append(proc.pid)
            proc = proc.parent()
    except psutil.Error:
        pass
    return pids


def _jupyter_servers() -> list[dict]:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return []
    found = []
    for path in glob.glob(os.path.join(jupyter_runtime_dir(), "jpserver-*.json")):
        try:
            info = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        if _alive(info.get("pid")):
            found.append(info)
    return found


def _runtime_file_candidates() -> list[Path]:
    roots = []
    if os.environ.get("PAI_LAB_ROOT"):
        roots.append(Path(os.environ["PAI_LAB_ROOT"]))
    cwd = Path.cwd()
    roots.extend([cwd, *cwd.parents])
    return [r / ".pai_lab" / "server.json" for r in roots]


def read_runtime_file(path: Path) -> ServerInfo | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(info.get("pid")):
        return None
    return ServerInfo(info["url"], info.get("token", ""), f"pai server ({path})")


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=0.5):
            return True
    except OSError:
        return False


def discover() -> ServerInfo:
    url = os.environ.get("PAI_LAB_URL")
    if url:
        return ServerInfo(url, os.environ.get("PAI_LAB_TOKEN", ""), "PAI_LAB_URL")

    servers = _jupyter_servers()
    ancestors = set(_ancestors())
    for info in servers:  # the Jupyter server that started this kernel or terminal
        # (a runtime file can outlive its server while the process lives on: skip one that is closed)
        if info.get("pid") in ancestors and _listening(info.get("url", "")):
            return ServerInfo(info["url"], info.get("token", ""), "jupyter server")

    for path in _runtime_file_candidates():
        found = read_runtime_file(path)
        if found:
            return found

    cwd = str(Path.cwd().resolve())
    for info in servers:  # a Jupyter server whose root holds the current folder
        root = str(Path(info.get("root_dir", "/")).resolve())
        if cwd == root or cwd.startswith(root.rstrip(os.sep) + os.sep):
            return ServerInfo(info["url"], info.get("token", ""), "jupyter server")
    raise ServerNotFound(HOW_TO_START)


# ---------------------------------------------------------------- connect(start=True)


class _StartedServer:
    """A `pai server` child this process started; stopped (with its Dask workers) when Python exits."""

    def __init__(self, root: Path, proc: subprocess.Popen, info: ServerInfo, log: Path):
        self.root, self.proc, self.info, self.log = root, proc, info, log
        self.owner = os.getpid()  # a forked child inherits this object but must not stop the server

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if not self.alive():
            return
        self.proc.terminate()  # SIGTERM: the server stops its managers and removes its runtime file
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            if hasattr(os, "killpg"):  # its own session: the group holds what it spawned
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.kill()
            self.proc.wait(10)


_started: dict[str, _StartedServer] = {}
_start_lock = threading.Lock()


def _stop_started() -> None:
    for server in list(_started.values()):
        server.stop()
    _started.clear()


atexit.register(_stop_started)


def started_server() -> ServerInfo | None:
    """The server ``start_server`` started in this process, while it runs."""
    for server in _started.values():
        if server.alive():
            return server.info
    return None


def start_server(root: str | Path | None = None, timeout: float = 120) -> ServerInfo:
    """Run ``pai server`` on ``root`` (default: ``$PAI_LAB_ROOT`` or the current folder) as a child of this
    process, or reuse the one already running there; wait until it answers. A server this process
    starts is stopped when it exits (and, should it die without cleaning up, stops by itself)."""
    root = Path(root or os.environ.get("PAI_LAB_ROOT") or ".").expanduser().resolve()
    runtime = root / ".pai_lab" / "server.json"
    with _start_lock:
        found = read_runtime_file(runtime)
        if found:
            return _wait_answering(found, None, timeout)
        mine = _started.get(str(root))
        if mine is not None and mine.alive():
            return mine.info
        runtime.parent.mkdir(parents=True, exist_ok=True)
        with _folder_lock(runtime.parent / "start.lock"):
            found = read_runtime_file(runtime)  # another process may have started one meanwhile
            if found:
                return _wait_answering(found, None, timeout)
            server = _spawn(root, runtime, timeout)
        _started[str(root)] = server
    print(
        f"[pai_lab] started a pai server for {root} at {server.info.url} (log: {server.log}); "
        "it stops when this Python process exits",
        file=sys.stderr,
    )
    return server.info


class _folder_lock:
    """An exclusive lock on a file, so two processes starting in one folder start one server."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "a+")
        try:
            import fcntl
        except ImportError:  # Windows: no lock, at worst two servers (the second is then reused)
            return self
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.fh.close()  # closing releases the lock


def _spawn(root: Path, runtime: Path, timeout: float) -> _StartedServer:
    import secrets

    token = secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_LAB_")}
    env["PAI_LAB_TOKEN"] = token  # not on the command line, where `ps` would show it
    log = runtime.parent / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pai_lab", "server", "--root", str(root), "--stop-with", str(os.getpid())],
            cwd=str(root),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # Ctrl-C in this terminal interrupts the script, not its server
    server = _StartedServer(root, proc, ServerInfo("", token, f"pai server started by this process ({root})"), log)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not server.alive():
                tail = log.read_text(errors="replace")[-2000:]
                raise ServerNotFound(
                    f"the pai server started for {root} exited with {proc.returncode}; its log ({log}) ends:\n{tail}"
                )
            found = read_runtime_file(runtime)
            if found:
                try:
                    pid = json.loads(runtime.read_text()).get("pid")
                except (OSError, ValueError):
                    pid = None
                if pid == proc.pid:
                    server.info = ServerInfo(found.url, token, server.info.source)
                    _wait_answering(server.info, server, deadline - time.monotonic())
                    return server
            time.sleep(0.1)
        raise ServerNotFound(
            f"the pai server started for {root} did not answer within {timeout:.0f} s; see its log {log}"
        )
    except BaseException:
        server.stop(timeout=10)
        raise


def _wait_answering(info: ServerInfo, server: _StartedServer | None, timeout: float) -> ServerInfo:
    import requests

    deadline = time.monotonic() + max(timeout, 1)
    headers = {"Authorization": f"token {info.token}"} if info.token else {}
    while True:
        try:
            if requests.get(info.api + "/me", headers=headers, timeout=5).status_code == 200:
                return info
        except requests.RequestException:
            pass
        if (server is not None and not server.alive()) or time.monotonic() > deadline:
            raise ServerNotFound(f"the pai server at {info.url} ({info.source}) does not answer")
        time.sleep(0.1)
