"""Servers that start at once on one fresh database take turns at the schema upgrade: each of two
processes released together runs `Store.migrate()`, neither fails, and the schema is the declared one."""

from __future__ import annotations

import multiprocessing

import pytest

from pai_lab.store import Store, _import_all_tables
from tests.unit.test_store_migrations import all_revisions, applied, schema_differences

STARTS = 3  # servers starting together


def _start(url: str, barrier, results) -> None:
    store = Store(url)
    try:
        barrier.wait(120)  # every process has imported what it needs: they upgrade at the same moment
        store.migrate()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - the parent asserts on what each process reports
        results.put(f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        store.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'pai.db'}"
    return request.getfixturevalue("new_postgres_database")()


def test_servers_starting_together_on_a_fresh_store_take_turns_at_the_schema_upgrade(fresh_database):
    ctx = multiprocessing.get_context("spawn")  # separate processes, as separate servers are
    barrier, results = ctx.Barrier(STARTS), ctx.Queue()
    procs = [ctx.Process(target=_start, args=(fresh_database, barrier, results)) for _ in range(STARTS)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(60)
    assert outcomes == ["ok"] * STARTS
    _import_all_tables()  # the declared schema, to compare with
    store = Store(fresh_database)
    try:
        assert applied(store) == all_revisions(store)
        assert schema_differences(store) == []
    finally:
        store.dispose()
