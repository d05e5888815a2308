"""The store: an older database file is upgraded in place, and a failed write leaves nothing."""

import sqlite3
from datetime import datetime

import pytest
from sqlalchemy import select

from pai_lab import workspaces
from pai_lab.errors import Conflict
from pai_lab.platform import Platform
from pai_lab.store import Store
from pai_lab.workspaces.tables import WorkspaceRow


def test_older_database_is_migrated_in_place_and_nothing_is_lost(tmp_path):
    db = tmp_path / ".pai_lab" / "pai.db"
    url = f"sqlite:///{db}"
    old = Store(url)
    old.migrate("core_0001")  # the schema of the first release: no status, no operation log
    old.dispose()
    con = sqlite3.connect(db)
    con.execute(
        "INSERT INTO workspaces (id, name, description, created_by, created_at) VALUES "
        "('ws-old', 'legacy_team', 'from v0', 'carol', ?)",
        (datetime(2025, 1, 2).isoformat(" "),),
    )
    con.execute(
        "INSERT INTO members VALUES ('ws-old', 'carol', '[\"Owner\"]', 'carol', ?)",
        (datetime(2025, 1, 2).isoformat(" "),),
    )
    con.commit()
    columns = [r[1] for r in con.execute("PRAGMA table_info(workspaces)")]
    con.close()
    assert "status" not in columns

    platform = Platform(tmp_path, owner="owner").start()
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(platform.store.alembic_config()).get_heads())
    current = platform.store.current_revisions()
    assert current and current <= heads  # every branch at its head (core_0002 is implied by those on it)
    with platform.store.engine.connect() as conn:
        assert "status" in [r[1] for r in conn.exec_driver_sql("PRAGMA table_info(workspaces)")]
        assert conn.exec_driver_sql("SELECT count(*) FROM operation_log").scalar() == 0
    with platform.store.transaction() as s:
        legacy = workspaces.get_workspace(s, "carol", "legacy_team")
        assert (legacy.description, legacy.status, legacy.my_roles) == ("from v0", "Normal", ["Owner"])
        assert [w.name for w in workspaces.list_workspaces(s, "owner")] == ["default"]
        workspaces.log_operation(s, "legacy_team", "carol", "test.op", "/x", "ok")
    with platform.store.transaction() as s:
        assert workspaces.list_operations(s, "carol", "legacy_team")[0].action == "test.op"
    platform.store.dispose()

    again = Platform(tmp_path, owner="owner").start()  # a second start changes nothing
    with again.store.transaction() as s:
        assert sorted(r.name for r in s.scalars(select(WorkspaceRow))) == ["default", "legacy_team"]
    again.store.dispose()


def test_a_failed_transaction_writes_nothing(tmp_path):
    platform = Platform(tmp_path, owner="owner").start()
    with pytest.raises(Conflict), platform.store.transaction() as s:
        workspaces.create_workspace(s, "owner", "first_one")
        workspaces.create_workspace(s, "owner", "First_One")  # fails after the first was flushed
    with platform.store.transaction() as s:
        assert [w.name for w in workspaces.list_workspaces(s, "owner")] == ["default"]
    platform.store.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path):
    platform = Platform(tmp_path, owner="owner").start()
    with platform.store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    platform.store.dispose()


def test_work_declared_after_a_write_runs_once_it_commits_and_never_after_a_rollback(tmp_path):
    from pai_lab.store import after_commit

    platform = Platform(tmp_path).start()
    seen = []

    def launch():  # what a domain function declares: it must see the committed row
        with platform.store.transaction() as session:
            seen.append(session.scalar(select(WorkspaceRow.name).where(WorkspaceRow.name == "team_a")))

    with platform.store.transaction() as session:
        workspaces.create_workspace(session, platform.owner, "team_a")
        after_commit(session, launch)
        assert seen == []  # not before the commit
    assert seen == ["team_a"]
    with pytest.raises(Conflict), platform.store.transaction() as session:
        after_commit(session, lambda: seen.append("after a failed write"))
        workspaces.create_workspace(session, platform.owner, "team_a")
    assert seen == ["team_a"]


def test_work_after_a_commit_that_fails_is_reported_and_the_write_stands(tmp_path):
    from pai_lab.errors import Unavailable
    from pai_lab.store import after_commit

    platform = Platform(tmp_path).start()
    ran = []

    def gateway_down():
        raise Unavailable("the serving gateway does not start")

    with pytest.raises(Unavailable, match="does not start"), platform.store.transaction() as session:
        workspaces.create_workspace(session, platform.owner, "team_b")
        after_commit(session, gateway_down)
        after_commit(session, lambda: ran.append("the next step"))
    assert ran == ["the next step"]
    with platform.store.transaction() as session:
        assert session.scalar(select(WorkspaceRow.name).where(WorkspaceRow.name == "team_b")) == "team_b"
