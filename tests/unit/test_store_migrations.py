"""The store's migrations on SQLite and PostgreSQL: from an empty database they build exactly the
schema the tables declare, and a database made by an earlier release's schema, with a row in every
table, is upgraded in place with nothing lost."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from pai_lab.platform import Platform
from pai_lab.store import Base, Store

# The heads of the first release's schema: workspaces with their log, datasets, labeling, serving,
# training (no pipelines, no resource groups, no suggestion scores, no autoscaler yet).
PREVIOUS_RELEASE = ("core_0002", "datasets_0001", "labeling_0001", "serving_0001", "training_0001")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """The URL of an empty database of either kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'pai.db'}"
    return request.getfixturevalue("new_postgres_database")()


def applied(store: Store) -> set[str]:
    """Every revision the database has had applied (those its recorded heads follow from)."""
    revisions = ScriptDirectory.from_config(store.alembic_config()).revision_map
    return {r.revision for r in revisions.iterate_revisions(tuple(store.current_revisions()), "base")}


def all_revisions(store: Store) -> set[str]:
    return {r.revision for r in ScriptDirectory.from_config(store.alembic_config()).walk_revisions()}


def schema_differences(store: Store) -> list:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_every_head_from_an_empty_database_is_the_declared_schema(empty_database, tmp_path):
    store = Store(empty_database)
    store.migrate()
    assert applied(store) == all_revisions(store)
    assert schema_differences(store) == []  # the migrations make what the tables declare, nothing else
    heads = store.current_revisions()
    store.migrate()  # a second run changes nothing
    assert store.current_revisions() == heads
    store.dispose()
    platform = Platform(tmp_path / "root", empty_database, owner="owner").start()  # the server starts on it
    with platform.store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM workspaces")).scalars().all() == ["default"]
    platform.store.dispose()


def _value(column: sa.Column, n: int):
    """A value of the column's type, distinct per table (``n``), that survives a round trip as is."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, (sa.Integer, sa.BigInteger, sa.SmallInteger)):
        return 40 + n
    if isinstance(kind, (sa.Float, sa.Numeric)):
        return 0.25 + n
    if isinstance(kind, sa.DateTime):
        return dt.datetime(2025, 1, 2, 3, 4, 5) + dt.timedelta(minutes=n)
    if isinstance(kind, sa.LargeBinary):
        return bytes([n, 0, 255]) * 3
    if isinstance(kind, sa.JSON):
        return {"kept": [n, "a"]} if "people" in column.name or "spec" in column.name else [f"v{n}"]
    if isinstance(kind, sa.String) and kind.length:
        return f"{column.name[:3]}{n}"[: kind.length]
    return f"{column.name} of row {n} ✓"  # Text: non-ASCII survives too


def fill_every_table(conn: sa.Connection) -> dict[str, list[dict]]:
    """One row in every table the database has, foreign keys pointing at the rows made before; returns
    what was written, read back (with the ids the database gave)."""
    meta = sa.MetaData()
    meta.reflect(conn)
    written: dict[str, list[dict]] = {}
    for n, table in enumerate(meta.sorted_tables):
        if table.name == "alembic_version":
            continue
        row = {}
        for column in table.columns:
            if column.foreign_keys:
                fk = next(iter(column.foreign_keys))
                row[column.name] = written[fk.column.table.name][0][fk.column.name]
            elif column.primary_key and column.autoincrement is not False and isinstance(column.type, sa.Integer):
                if len(table.primary_key.columns) == 1:
                    continue  # the database numbers it
                row[column.name] = 40 + n
            else:
                row[column.name] = _value(column, n)
        conn.execute(table.insert().values(**row))
        written[table.name] = [dict(r._mapping) for r in conn.execute(sa.select(table))]
        assert len(written[table.name]) == 1, table.name
    return written


def read_back(conn: sa.Connection, columns: dict[str, list[str]]) -> dict[str, list[dict]]:
    meta = sa.MetaData()
    meta.reflect(conn, only=list(columns))
    return {
        name: [dict(r._mapping) for r in conn.execute(sa.select(*(meta.tables[name].c[c] for c in cols)))]
        for name, cols in columns.items()
    }


def test_a_database_of_the_previous_release_is_upgraded_with_every_row_kept(empty_database, tmp_path):
    old = Store(empty_database)
    for head in PREVIOUS_RELEASE:
        old.migrate(head)
    assert set(PREVIOUS_RELEASE) <= applied(old) < all_revisions(old)
    with old.engine.begin() as conn:
        before = fill_every_table(conn)
    assert {"workspaces", "members", "operation_log", "datasets", "label_items", "label_answers"} <= set(before)
    assert "pipeline_runs" not in before  # the later schema is not there yet
    old.dispose()

    platform = Platform(tmp_path / "root", empty_database, owner="owner").start()  # how a server upgrades
    store = platform.store
    assert applied(store) == all_revisions(store)
    assert schema_differences(store) == []
    with store.engine.connect() as conn:
        after = read_back(conn, {name: list(rows[0]) for name, rows in before.items()})
        default = conn.execute(sa.text("SELECT id FROM workspaces WHERE name = 'default'")).scalar()
        pipeline_runs = conn.execute(sa.text("SELECT count(*) FROM pipeline_runs")).scalar()
    # every row of every table, every column it had, exactly as written (less the default workspace the
    # server adds, with its owner)
    assert default is not None and pipeline_runs == 0
    for name, rows in after.items():
        after[name] = [
            r for r in rows if default not in (r.get("workspace_id"), r["id"] if name == "workspaces" else None)
        ]
    assert after == before
    with store.engine.connect() as conn:  # the columns added since are empty on the old rows
        item = conn.execute(sa.text("SELECT label_origin, prelabel_score FROM label_items")).one()
        assert tuple(item) == (None, None)
    store.dispose()


def _newest_migrations() -> list[str]:
    """Each branch's newest migration that has one before it on its branch (core's first is the base the
    other branches depend on, so core is left at its head)."""
    from alembic.config import Config

    from pai_lab.store import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(config)
    return sorted(h for h in script.get_heads() if script.get_revision(h).down_revision and not h.startswith("core_"))


@pytest.mark.parametrize("newest", _newest_migrations())
def test_a_database_one_migration_back_on_a_branch_is_upgraded_with_every_row_kept(newest, empty_database, tmp_path):
    old = Store(empty_database)
    script = ScriptDirectory.from_config(old.alembic_config())
    back = script.get_revision(newest).down_revision
    for head in script.get_heads():  # the schema as the release before that migration left it
        old.migrate(back if head == newest else head)
    assert newest not in applied(old) and applied(old) | {newest} == all_revisions(old)
    with old.engine.begin() as conn:
        before = fill_every_table(conn)
    old.dispose()

    platform = Platform(tmp_path / "root", empty_database, owner="owner").start()
    store = platform.store
    assert applied(store) == all_revisions(store) and schema_differences(store) == []
    with store.engine.connect() as conn:
        after = read_back(conn, {name: list(rows[0]) for name, rows in before.items()})
        default = conn.execute(sa.text("SELECT id FROM workspaces WHERE name = 'default'")).scalar()
    for name, rows in after.items():  # less the default workspace the server adds, with its owner
        after[name] = [
            r for r in rows if default not in (r.get("workspace_id"), r["id"] if name == "workspaces" else None)
        ]
    assert after == before  # every row of every table, every column it had, exactly as written
    if newest == "training_0002":  # a log line from before streams were kept reads as stdout
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT stream FROM training_logs")).scalars().all() == ["stdout"]
    store.dispose()
