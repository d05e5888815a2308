"""WorkQueue: PAI-TF's slicing and epochs, and its delivery on a real Dask cluster of two worker processes
(every item exactly once across two ranks, a killed rank's item handed to the other, restore)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pai_lab.pai_tf.work_items import QueueState, digest, expand, row_range, slice_rows


def test_slicing_follows_pai_tf():
    ranges = slice_rows("t", 1000, 30)
    assert len(ranges) == 31 and ranges[-1] == "t?start=990&end=1000" and ranges[0] == "t?start=0&end=33"
    assert len(slice_rows("t", 10, 40)) == 10
    assert row_range("s3://b/t?start=5&end=9") == ("s3://b/t", 5, 9)
    # files are taken whole, whatever num_slices says; only tables (a row count) are cut
    items = expand(["a.tfrecord", "tbl"], 4, lambda w: 8 if w == "tbl" else None)
    assert items == ["a.tfrecord", "tbl?start=0&end=2", "tbl?start=2&end=4", "tbl?start=4&end=6", "tbl?start=6&end=8"]


def test_epochs_are_shuffled_each_with_their_own_seed():
    items = sorted(str(i) for i in range(20))
    state = QueueState.fill(items, digest(items), num_epochs=2, shuffle=True, seed=7)
    order = list(state.pending)
    assert sorted(order[:20]) == items and sorted(order[20:]) == items and order[:20] != order[20:]
    again = QueueState.fill(items, digest(items), num_epochs=2, shuffle=True, seed=7)
    assert list(again.pending) == order
    assert list(QueueState.fill(items, digest(items), shuffle=False).pending) == items


def test_a_lapsed_lease_returns_its_item_first():
    state = QueueState.fill(["a", "b"], "d", shuffle=False, lease_seconds=1)
    assert state.take("r1", now=0)["item"] == "a"
    assert state.take("r2", now=0.5)["item"] == "b"
    assert "wait" in state.take("r2", now=0.6)  # r2 finished b; a is still r1's
    assert state.take("r2", now=2)["item"] == "a"  # r1 stopped renewing: its lease lapsed
    assert state.take("r2", now=2.1) == {"done": True} and state.redelivered == 1


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


def _consume(name: str, works: list[str], pause: float) -> list[str]:
    from pai_lab.pai_tf import WorkQueue

    queue = WorkQueue(works, shuffle=True, seed=3, name=name, lease_seconds=2)
    seen = []
    for item in queue:
        seen.append(item)
        time.sleep(pause)
    queue.close()
    return seen


def test_every_item_once_across_two_ranks(dask_client):
    works = [f"file-{i:02d}.tfrecord" for i in range(24)]
    workers = sorted(dask_client.scheduler_info()["workers"])
    futures = [
        dask_client.submit(_consume, "once", works, 0.02, workers=[w], pure=False, allow_other_workers=False)
        for w in workers
    ]
    first, second = dask_client.gather(futures)
    assert first and second  # both ranks pulled work
    assert sorted(first + second) == works  # every item exactly once


KILLED_RANK = """
import os, sys
from distributed import Client
from pai_lab.pai_tf import WorkQueue
client = Client(sys.argv[1])
queue = WorkQueue([f"part-{i}" for i in range(6)], shuffle=False, name="killed", lease_seconds=1, client=client)
print(queue.take(), flush=True)
os._exit(9)  # dies mid-item: no ack, no more renewals
"""


def test_a_killed_ranks_item_goes_to_the_other(dask_client):
    rank = subprocess.run(
        [sys.executable, "-c", KILLED_RANK, dask_client.scheduler.address],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rank.returncode == 9, rank.stderr[-2000:]
    held = rank.stdout.strip().splitlines()[-1]
    assert held == "part-0"
    survivor = dask_client.submit(_consume, "killed", [f"part-{i}" for i in range(6)], 0.0, pure=False).result()
    assert sorted(survivor) == [f"part-{i}" for i in range(6)]  # part-0 came back once its lease lapsed
    from pai_lab.pai_tf.work_queue import scheduler_call

    stats = scheduler_call(dask_client, action="stats", name="killed")["stats"]
    assert stats["redelivered"] == 1 and stats["remaining"] == 0


def test_restore_from_a_digest_continues_where_it_stopped(dask_client, tmp_path):
    from pai_lab.pai_tf import WorkQueue

    works = [f"w{i}" for i in range(10)]
    queue = WorkQueue(works, num_epochs=2, seed=1, name="restore", client=dask_client)
    first = [queue.take() for _ in range(3)]
    saved = queue.save(str(tmp_path / "wq.json"))
    later = [queue.take() for _ in range(5)]
    assert queue.restore(saved)
    rest = list(queue)
    assert rest[:5] == later  # the items taken after the save come again, in the same order
    assert len(first) + len(rest) == 20 and sorted(first + rest) == sorted(works * 2)
    assert "restore" in queue._repr_html_() and "<progress" in queue._repr_html_()

    other = WorkQueue(["x", "y"], name="restore-other", client=dask_client)
    with pytest.warns(UserWarning, match="abandoned"):
        assert not other.restore(saved)  # another works list: the checkpoint is not this queue's
    producer = other.input_producer()  # the local proxy a reader takes names from, one at a time
    assert sorted([next(producer), next(producer)]) == ["x", "y"]
    assert next(producer, None) is None  # ends once the queue is done


def test_a_table_is_cut_in_row_ranges_and_read_through_tf_data(dask_client, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    import pandas as pd

    from pai_lab.pai_tf import TableRecordDataset, WorkQueue

    pd.DataFrame({"n": range(10)}).to_parquet(tmp_path / "part-00000.parquet")
    queue = WorkQueue([str(tmp_path)], shuffle=False, num_slices=3, prefix="", name="tfdata", client=dask_client)
    assert queue.capacity == 4  # 10 rows, 3 slices: ranges of 3, the last [9, 10)
    taken = [item.numpy().decode() for item in queue.input_dataset()]  # a tf.data Dataset of items
    assert taken == [f"{tmp_path}?start={a}&end={b}" for a, b in ((0, 3), (3, 6), (6, 9), (9, 10))]
    read = [int(r[0]) for t in taken for r in TableRecordDataset([t], (0,))]
    assert read == list(range(10))
    assert queue.add_summary(step=1) == 0.0  # nothing left waiting
    assert "tfdata/fraction_of_4_full=0" in capsys.readouterr().out  # outside a job: printed

    named = WorkQueue(["a"], prefix="s3://bucket/", name="prefixed", client=dask_client)
    assert named.take() == "s3://bucket/a"
    other = WorkQueue(["a"], prefix="s3://bucket/", name="prefixed", client=dask_client)
    with pytest.raises(TimeoutError):
        other.take(timeout=0.3)  # the only item is out with the first holder
    named.ack()
    assert other.take(timeout=5) is None
    with pytest.raises(RuntimeError, match="already holds other works"):
        WorkQueue(["b"], name="prefixed", client=dask_client)


def test_a_full_scheduler_forgets_finished_queues_first(monkeypatch):
    from pai_lab.pai_tf import work_queue

    monkeypatch.setattr(work_queue, "MAX_QUEUES", 2)
    extension = work_queue.WorkQueueExtension()

    def create(name, items):
        spec = {"digest": digest(items), "items": items, "num_epochs": 1, "shuffle": False, "seed": 0}
        return extension.handle("create", name, spec={**spec, "lease_seconds": 30})

    create("done", ["a"])
    assert extension.handle("take", "done", holder="h")["item"] == "a"
    extension.handle("ack", "done", holder="h")
    create("busy", ["b"])
    assert "stats" in create("third", ["c"])  # "done" was finished: forgotten to make room
    assert "error" in extension.handle("stats", "done") and "stats" in extension.handle("stats", "busy")
    assert "already holds 2 work queues" in create("fourth", ["d"])["error"]  # both still have work


def _rank_that_dies_once(name: str, works: list[str]) -> list[str]:
    import os

    from distributed import Variable

    from pai_lab.pai_tf import WorkQueue

    queue = WorkQueue(works, shuffle=False, name=name, lease_seconds=1)
    died = Variable(f"{name}-died")
    try:
        held = died.get(timeout=0.2)
    except TimeoutError:
        held = None
    if held is None:
        died.set(queue.take())
        os._exit(9)  # the whole Dask worker process dies mid-item; its nanny starts a new one
    seen = []
    for item in queue:
        seen.append(item)
        time.sleep(0.05)
    return seen


def test_a_dask_worker_killed_mid_item_loses_nothing(dask_client):
    from distributed import Variable, wait

    works = [f"shard-{i}" for i in range(8)]
    workers = sorted(dask_client.scheduler_info()["workers"])
    dying = dask_client.submit(  # once its worker is gone, it runs again wherever there is room
        _rank_that_dies_once, "worker-death", works, workers=[workers[0]], allow_other_workers=True, pure=False
    )
    held = Variable("worker-death-died", client=dask_client).get(timeout=60)
    other = dask_client.submit(_consume, "worker-death", works, 0.05, workers=[workers[1]], pure=False)
    wait([dying, other], timeout=120)
    delivered = dask_client.gather([dying, other])  # the dead rank's task ran again on a fresh worker
    assert held == "shard-0" and sorted(delivered[0] + delivered[1]) == works  # shard-0 finished once
    from pai_lab.pai_tf.work_queue import scheduler_call

    assert scheduler_call(dask_client, action="stats", name="worker-death")["stats"]["redelivered"] == 1


def test_the_scheduler_checks_every_bound_of_a_queue_it_is_sent():
    from pai_lab.pai_tf.work_queue import WorkQueueExtension

    extension = WorkQueueExtension()
    good = {"digest": "d", "items": ["a"], "num_epochs": 1, "shuffle": False, "seed": None, "lease_seconds": 30}
    bad = [
        ({"num_epochs": 10**9}, "num_epochs"),
        ({"items": ["a"] * 600_000, "num_epochs": 2}, "work items"),
        ({"items": [{"not": "text"}]}, "work items"),
        ({"lease_seconds": 0}, "lease_seconds"),
        ({"seed": "x"}, "seed"),
    ]
    for change, words in bad:
        assert words in extension.handle("create", "q", spec={**good, **change})["error"]
    assert "stats" in extension.handle("create", "q", spec=good)
    assert "error" in extension.handle("restore", "q", state={"digest": "d", "remaining": "abc"})


RANK_OVER_THE_PIPE = """
import json
from pai_lab.pai_tf import WorkQueue
queue = WorkQueue(["a", "b", "c"], shuffle=False, name="wq")
print(json.dumps(list(queue)))
call = queue._call
print(json.dumps(call(action="stats", name="x" * 3000)))
print(json.dumps(call(action="stats", name="wq")))
print(json.dumps(call(action="update_graph", name="wq")))
"""


def test_a_ranks_pipe_reaches_only_its_jobs_queues(dask_client, monkeypatch):
    import os

    from pai_lab.pai_tf import broker
    from pai_lab.pai_tf.work_queue import scheduler_call

    monkeypatch.setattr(broker, "MAX_REQUEST", 1024)
    env = {k: v for k, v in os.environ.items() if k != broker.ENV_VAR}
    fds, passed = broker.serve(dask_client, "dlc-test", env)
    try:
        rank = subprocess.run(
            [sys.executable, "-c", RANK_OVER_THE_PIPE],
            env=env,
            pass_fds=fds,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        passed()
    assert rank.returncode == 0, rank.stderr[-2000:]
    items, oversized, stats, refused = (json.loads(line) for line in rank.stdout.splitlines())
    assert items == ["a", "b", "c"]
    assert "larger than" in oversized["error"] and stats["stats"]["capacity"] == 3  # in step after a bad call
    assert "not one a rank may call" in refused["error"]
    assert scheduler_call(dask_client, action="stats", name="dlc-test/wq")["stats"]["remaining"] == 0
    assert "error" in scheduler_call(dask_client, action="stats", name="wq")  # the name is the job's


def test_a_scheduler_of_its_own_process_gets_the_extension_once(remote_dask):
    from distributed import Client

    from pai_lab.pai_tf import WorkQueue

    with Client(remote_dask, timeout="30s") as client:
        first = WorkQueue(["x", "y"], shuffle=False, name="separate", client=client)
        second = WorkQueue(["x", "y"], shuffle=False, name="separate", client=client)  # attaches, same queue
        assert [first.take(), second.take()] == ["x", "y"]
        second.ack()  # y is finished; x is finished by first's next take
        assert first.take(timeout=30) is None


def _forget_extension(dask_scheduler=None):
    dask_scheduler.handlers.pop("pai_lab_work_queue", None)
    dask_scheduler.extensions.pop("pai-lab-work-queues", None)


def test_a_scheduler_that_lost_the_extension_gets_it_again(dask_client):
    from pai_lab.pai_tf import WorkQueue

    WorkQueue(["a"], name="before", client=dask_client)
    dask_client.run_on_scheduler(_forget_extension)  # as a scheduler started again at the same address
    again = WorkQueue(["b"], name="after", client=dask_client)
    assert list(again) == ["b"]
