"""A throwaway PostgreSQL server on loopback, from the distribution's own binaries (Debian's
``postgresql`` package): ``initdb`` into a temporary folder, ``pg_ctl start`` on a free port, trust
authentication for one superuser, no socket outside that folder. The tests' session fixture,
``benchmarks/labelers.py`` and ``.ci/run`` all start it this way. Standard library only, so CI can
run it before pai_lab is installed::

    python tests/pg_cluster.py start      # prints the folder, then the URL; the server keeps running
    python tests/pg_cluster.py stop DIR
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

SUPERUSER = "pai"


def bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: the PATH, else Debian's versioned folder (newest first)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent

    def version(folder: str) -> tuple[int, ...]:
        return tuple(int(part) for part in Path(folder).parent.name.split(".") if part.isdigit())

    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for folder in folders:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _as_server_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the ``postgres`` user."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(folder: Path | None = None, *, durable: bool = False) -> tuple[Path, str]:
    """Start a server; (its folder, the SQLAlchemy URL of its ``postgres`` database). Not ``durable``
    (for tests): no fsync, as nothing in it outlives the run; a benchmark keeps PostgreSQL's defaults."""
    binaries = bin_dir()
    if binaries is None:
        raise FileNotFoundError("PostgreSQL's initdb and pg_ctl were not found (on Debian: apt-get install postgresql)")
    folder = Path(folder or tempfile.mkdtemp(prefix="pai-pg-"))
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()

    def run(*argv) -> None:
        # in its own folder: the caller's may be closed to the postgres user
        done = subprocess.run(_as_server_user([str(a) for a in argv]), capture_output=True, text=True, cwd=folder)
        if done.returncode:
            log = folder / "server.log"
            raise RuntimeError(
                f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr or done.stdout}"
                + (log.read_text()[-2000:] if log.exists() else "")
            )

    run(binaries / "initdb", "-D", data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync")
    for attempt in range(3):  # the free port may be taken between finding it and the server binding it
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            run(binaries / "pg_ctl", "-D", data, "-o", options, "-l", folder / "server.log", "-w", "-t", "60", "start")
            break
        except RuntimeError:
            if attempt == 2:
                raise
            port = _free_port()
    return folder, f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres"


def stop(folder: Path) -> None:
    binaries = bin_dir()
    if binaries is not None and (Path(folder) / "data").exists():
        subprocess.run(
            _as_server_user([str(binaries / "pg_ctl"), "-D", str(Path(folder) / "data"), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
            cwd=folder,
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["start"]:
        where, url = start()
        print(where)
        print(url)
    elif sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        stop(Path(sys.argv[2]))
    else:
        raise SystemExit("usage: python tests/pg_cluster.py start | stop DIR")
