"""The metadata store: one SQLAlchemy engine, transactional sessions, schema migrations.

Every area declares its tables on :class:`Base` in its own ``tables`` module and ships its
migrations as an Alembic branch in ``store/migrations/versions``; :meth:`Store.migrate`
upgrades every branch to its head, so an older database file is upgraded in place.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_WAIT_SECONDS = 600.0  # how long a server waits for another one's schema upgrade
log = logging.getLogger("pai_lab")


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_id(prefix: str, nbytes: int = 6) -> str:
    return f"{prefix}-{secrets.token_hex(nbytes)}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the kernel-facing API read while a long write (a scan, an export) is under way.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # LIFO: a quiet server keeps reusing its warmest connection, whose page cache is still valid
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_use_lifo=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _import_all_tables() -> None:
    # Importing the area modules registers their tables on Base.metadata. Here, not at the top:
    # each of them imports Base from this module.
    from pai_lab.datasets import tables as _datasets  # noqa: F401
    from pai_lab.labeling import tables as _labeling  # noqa: F401
    from pai_lab.pipelines import tables as _pipelines  # noqa: F401
    from pai_lab.resources import tables as _resources  # noqa: F401
    from pai_lab.serving import tables as _serving  # noqa: F401
    from pai_lab.training import tables as _training  # noqa: F401
    from pai_lab.workspaces import tables as _workspaces  # noqa: F401


AFTER_COMMIT = "pai_lab_after_commit"


def after_commit(session: Session, work: Callable[[], object]) -> None:
    """Declare work that follows a write (launch a job, prepare media, bring services in line) from
    inside the domain: it runs once the session's transaction commits, never if it rolls back, so a
    door never has to remember it. If it fails, the write stands and the error reaches the caller
    (a 503 for a gateway that does not start), after the other declared work has run."""
    session.info.setdefault(AFTER_COMMIT, []).append(work)


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["engine"] = self.engine
        return cfg

    def migrate(self, revision: str = "heads", wait: float = MIGRATION_WAIT_SECONDS) -> None:
        """Bring the schema to ``revision`` (default: every branch's head), in place. Servers that start
        at once on one database take turns (:func:`pai_lab.store.migration_lock.held`): the second finds
        the schema its predecessor made and has nothing left to do."""
        from alembic import command

        from pai_lab.store.migration_lock import held

        _import_all_tables()
        with held(self.engine, wait):
            command.upgrade(self.alembic_config(), revision)

    def current_revisions(self) -> set[str]:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose writes commit together at the end, or not at all; then the work the domain
        declared with :func:`after_commit` runs."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            work = session.info.pop(AFTER_COMMIT, [])
            session.close()
        failed = None
        for step in work:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the write stands; the rest still runs, then the caller hears of it
                log.warning("pai_lab: work after a commit failed: %s", exc)
                failed = failed or exc
        if failed is not None:
            raise failed

    def dispose(self) -> None:
        self.engine.dispose()
