"""Finding the control plane from a kernel, a terminal or a script.

Order (DESIGN.md): ``PAI_LAB_URL`` + ``PAI_LAB_TOKEN``; the Jupyter server this process runs
under (jupyter_server runtime files); the ``<root>/.pai_lab/server.json`` of a ``pai server``.
"""

from __future__ import annotations

import glob
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from pai_lab.errors import ServerNotFound

HOW_TO_START = (
    "no pai_lab server found. Start one with `pai server` (or open JupyterLab with pai_lab installed), "
    "or set PAI_LAB_URL and PAI_LAB_TOKEN"
)


@dataclass
class ServerInfo:
    url: str
    token: str
    source: str

    @property
    def api(self) -> str:
        return self.url.rstrip("/") + "/pai-lab/api/v1"


def _alive(pid) -> bool:
    try:
        return bool(pid) and psutil.pid_exists(int(pid))
    except (TypeError, ValueError):
        return False


def _ancestors() -> list[int]:
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
