"""How a job's news travels without polling: rank events through the job's Dask queue to its supervisor
(a real in-process Dask cluster), and state changes to the requests that long-poll the job (a real store)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import select

from pai_lab.changes import JOB_CHANGES
from pai_lab.platform import Platform
from pai_lab.training import records
from pai_lab.training.rank_events import RankEvents
from pai_lab.training.tables import JobRow
from pai_lab.workspaces.tables import WorkspaceRow


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0")
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def _put_from_a_task(name: str, items: list) -> int:
    from distributed import Queue

    queue = Queue(name)
    for item in items:
        queue.put(item)
    return len(items)


def test_rank_events_arrive_in_order_and_close_leaves_later_items_on_the_queue(dask_client):
    from distributed import Queue

    queue = Queue("pai-test-events", client=dask_client)
    events = RankEvents(queue)
    assert events.take(0) == []  # nothing yet, and no wait asked
    sent = [("ready", "p-0", "127.0.0.1", 1, "w"), ("log", "p-0", [[1, 0.0, "hello", "stdout"]]), ("exit", "p-0", 0)]
    assert dask_client.submit(_put_from_a_task, "pai-test-events", sent, pure=False).result() == 3
    got: list = []
    while len(got) < 3:
        more = events.take(30)
        assert more, "an event put by a rank's task never reached the reader"
        got += more
    assert [tuple(x[:2]) for x in got] == [("ready", "p-0"), ("log", "p-0"), ("exit", "p-0")]
    assert got[1][2][0][2] == "hello"

    events.close()
    assert not events.thread.is_alive()
    assert events.take(30) == []  # a closed reader answers at once
    queue.put(("after",))  # nobody reads the queue any more: the item stays there
    assert [tuple(x) for x in queue.get(batch=True)] == [("after",)]
    events.close()  # twice is fine


def test_rank_events_that_lose_their_scheduler_raise_for_the_supervisor():
    from distributed import Client, LocalCluster, Queue

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
    client = Client(cluster, set_as_default=False)
    events = RankEvents(Queue("pai-test-lost", client=client))
    client.close()
    cluster.close()
    events.thread.join(30)
    assert not events.thread.is_alive()
    with pytest.raises(RuntimeError, match="event queue failed"):
        events.take(1)


@pytest.fixture
def job(tmp_path):
    platform = Platform(tmp_path, owner="owner").start()
    with platform.store.transaction() as s:
        workspace = s.scalars(select(WorkspaceRow)).first()
        assert workspace is not None
        s.add(
            JobRow(
                id="dlc-20260101000000-changes1",
                workspace_id=workspace.id,
                name="changes",
                kind="tfjob",
                state="Creating",
                spec={"workers": 1},
                work_dir=str(tmp_path),
                output_dir=str(tmp_path),
                created_by="owner",
            )
        )
    yield platform.store, "dlc-20260101000000-changes1"
    platform.store.dispose()


def test_a_state_change_is_announced_once_committed_and_never_when_rolled_back(job):
    store, job_id = job
    before = JOB_CHANGES.count(job_id)
    with store.transaction() as s:
        assert records.transition(s, job_id, "Queuing", "waiting")
        assert JOB_CHANGES.count(job_id) == before  # not yet committed: a reader would see the old state
    assert JOB_CHANGES.count(job_id) == before + 1

    with pytest.raises(ValueError), store.transaction() as s:
        records.transition(s, job_id, "Running")
        raise ValueError("rolled back")
    assert JOB_CHANGES.count(job_id) == before + 1
    with store.transaction() as s:
        assert records.state_of(s, job_id) == "Queuing"

    seen = JOB_CHANGES.count(job_id)
    with store.transaction() as s:
        assert records.transition(s, job_id, "Succeeded")
    # the job ended: its count is forgotten, and a request that read it before hears the change at once
    assert asyncio.run(JOB_CHANGES.wait(job_id, seen, 30)) is True


def test_a_waiting_request_wakes_on_a_change_from_another_thread_and_times_out_without_one():
    job_id = "dlc-20260101000000-changes2"

    async def follow() -> tuple[bool, bool, bool]:
        seen = JOB_CHANGES.count(job_id)
        quiet = await JOB_CHANGES.wait(job_id, seen, 0.05)
        timer = threading.Timer(0.2, JOB_CHANGES.changed, [job_id])
        timer.start()
        woken = await JOB_CHANGES.wait(job_id, seen, 60)
        timer.join()
        missed = await JOB_CHANGES.wait(job_id, seen, 60)  # the change came before this wait: at once
        return quiet, woken, missed

    assert asyncio.run(follow()) == (False, True, True)
    JOB_CHANGES.forget(job_id)
