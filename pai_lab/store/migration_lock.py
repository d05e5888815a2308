"""One schema upgrade at a time per database: servers that start together on a fresh store (one per user
under JupyterHub, replicas behind a load balancer) take turns, so no two run Alembic's DDL at once.

PostgreSQL: a session-level advisory lock (scoped to the database by PostgreSQL itself), held on a
connection of its own for the upgrade's length and released when that connection ends, even if the
server holding it dies. SQLite: an exclusive ``flock`` on a file beside the database."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

log = logging.getLogger("pai_lab")

# pg_advisory_lock's key (a bigint): the first 8 bytes of sha256(b"pai_lab store migrations"), signed
ADVISORY_KEY = 0x63E93A2ABF9FAD38
POLL_SECONDS = 0.25


class MigrationLockTimeout(RuntimeError):
    """Another server held the schema upgrade for longer than this one would wait."""


UPGRADE = "the store's schema upgrade"


def _give_up(waited: float, holder: str, what: str = UPGRADE) -> MigrationLockTimeout:
    return MigrationLockTimeout(
        f"{what} is held by another pai_lab server ({holder}) for more than {waited:.0f} s; "
        "let it finish (its log says what it does) or end it, then try again"
    )


@contextlib.contextmanager
def held(engine: Engine, wait: float) -> Iterator[None]:
    """Hold the database's migration lock for the block, waiting up to ``wait`` seconds for another holder."""
    dialect = engine.dialect.name
    database = _sqlite_file(engine) if dialect == "sqlite" else None
    if dialect == "postgresql":
        with _advisory(engine, wait):
            yield
    elif database is not None and _lockable(database.with_name(database.name + ".migrate-lock")):
        with file_lock(database.with_name(database.name + ".migrate-lock"), wait):
            yield
    else:  # an in-memory SQLite has one user; other databases are not supported as stores
        yield


@contextlib.contextmanager
def _advisory(engine: Engine, wait: float) -> Iterator[None]:
    deadline = time.monotonic() + wait
    said = False
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")  # the lock is the session's, not a transaction's
        while not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}).scalar():
            if time.monotonic() > deadline:
                raise _give_up(wait, "a PostgreSQL session holds its advisory lock")
            if not said:
                log.info("pai_lab: another server is upgrading the store's schema; waiting for it")
                said = True
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})


def _lockable(path: Path) -> bool:
    """Whether the lock file can be made beside the database: a store in a folder this server may only read
    (a kept copy, opened to look) is upgraded unlocked, as before, rather than refused."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        log.warning("pai_lab: no lock beside the store (%s); upgrading its schema without one", exc)
        return False
    return True


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database)


@contextlib.contextmanager
def file_lock(path: Path, wait: float, what: str = UPGRADE) -> Iterator[None]:
    """An exclusive lock on ``path`` (made 0600 when missing) among processes of this machine, for the block;
    also what the serving managers of several servers over one team folder take turns with."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, wait, path, what)
        try:
            yield
        finally:
            _release(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _release(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _acquire(fd: int, wait: float, path: Path, what: str) -> None:
    deadline = time.monotonic() + wait
    said = False
    while not _try(fd):
        if time.monotonic() > deadline:
            raise _give_up(wait, f"a process holds {path.name}", what)
        if not said:
            log.info("pai_lab: another server holds %s; waiting for it", what)
            said = True
        time.sleep(POLL_SECONDS)
