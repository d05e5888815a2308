"""A run's state, written by its driver, wakes the requests that long-poll the run once it is committed
(a real store; the driver's own write, no Dask needed for it)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from pai_lab.changes import RUN_CHANGES
from pai_lab.pipelines.driver import RunDriver
from pai_lab.pipelines.tables import RunRow
from pai_lab.platform import Platform
from pai_lab.workspaces.tables import WorkspaceRow

RUN_ID = "run-changes-1"


@pytest.fixture
def driver(tmp_path):
    platform = Platform(tmp_path, owner="owner").start()
    with platform.store.transaction() as s:
        workspace = s.scalars(select(WorkspaceRow)).first()
        assert workspace is not None
        s.add(
            RunRow(
                id=RUN_ID,
                workspace_id=workspace.id,
                name="changes",
                pipeline="changes@v1",
                status="Running",
                manifest={},
                work_dir=str(tmp_path),
                created_by="owner",
            )
        )
    yield RunDriver(SimpleNamespace(platform=platform), RUN_ID)  # type: ignore[arg-type]
    platform.store.dispose()


def test_a_waiting_request_wakes_when_the_driver_commits_a_run_state(driver):
    async def follow() -> tuple[bool, bool, str]:
        seen = RUN_CHANGES.count(RUN_ID)
        # a write that leaves the state as it was (a run's request cleared) wakes nobody
        await asyncio.get_running_loop().run_in_executor(None, lambda: driver._update_run(request=""))
        quiet = await RUN_CHANGES.wait(RUN_ID, seen, 0.05)
        timer = threading.Timer(0.2, driver._update_run, kwargs={"status": "Suspended"})
        timer.start()
        woken = await RUN_CHANGES.wait(RUN_ID, seen, 60)
        timer.join()
        with driver.store.transaction() as s:
            status = s.get(RunRow, RUN_ID).status  # what the woken request reads: the committed state
        return quiet, woken, status

    assert asyncio.run(follow()) == (False, True, "Suspended")

    seen = RUN_CHANGES.count(RUN_ID)
    driver._update_run(status="Succeeded")
    # the run ended: its count is forgotten, and a request that read it before hears the change at once
    assert asyncio.run(RUN_CHANGES.wait(RUN_ID, seen, 30)) is True
    assert RUN_CHANGES.count(RUN_ID) == 0
