"""Job priority (PAI's 1-9): on a full cluster of one slot, waiting jobs start highest first, then in
submission order; AlgorithmOps may reorder the queue, a Guest may not."""

from __future__ import annotations

import json

import pytest

from pai_lab.errors import Forbidden
from tests.conftest import USER_TOKENS, start_pai_server
from tests.fixtures.training import dask_processes, wait_for


@pytest.fixture(scope="module")
def one_slot_server(tmp_path_factory):
    """A `pai server` on a Dask cluster with one worker thread: room for one rank at a time."""
    folder = tmp_path_factory.mktemp("one_slot")
    with dask_processes(folder, nthreads=1) as address:
        server = start_pai_server(folder / "root", "--dask-scheduler", address)
        try:
            wait_for(lambda: server.client().http.get("/cluster")["workers"], 60)
            ws = server.client().workspace("default")
            for user, role in (("ops", "AlgorithmOps"), ("dev", "AlgorithmDeveloper"), ("guest", "Guest")):
                ws.members.add(user, [role])
            yield server
        finally:
            server.stop()


def _pai(server, *argv: str, user: str = "owner", monkeypatch, capsys):
    from pai_lab.cli import main

    monkeypatch.setenv("PAI_LAB_URL", server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", server.token if user == "owner" else USER_TOKENS[user])
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_waiting_jobs_start_by_priority_and_ops_reorders_them(one_slot_server, rank_script, monkeypatch, capsys):
    server = one_slot_server
    ws = server.client().workspace("default")
    quick = f"python {rank_script} --mode=flags --lines=1"
    blocker = ws.jobs.submit(name="blocker", command=f"python {rank_script} --mode=sleep")
    wait_for(lambda: blocker.refresh().state == "Running", 120)

    # first in line, but more ranks than the cluster has threads: it waits without holding up the others
    huge = ws.jobs.submit(name="huge", command=quick, workers=2, priority=9)
    wait_for(lambda: "waiting for 2 rank slots" in huge.refresh().reason, 60)
    low = ws.jobs.submit(name="low", command=quick, priority=1)
    mid = ws.jobs.submit(name="mid", command=quick, priority=5)
    # the CLI's --priority, as `dlc submit tfjob` takes it
    rc, out, err = _pai(
        server,
        "dlc",
        "submit",
        "tfjob",
        "--name",
        "high",
        "--command",
        quick,
        "--workers",
        "1",
        "--priority",
        "9",
        "--detach",
        "--json",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert rc == 0, err
    high = ws.jobs.get(json.loads(out)["id"])
    for job in (low, mid, high):
        wait_for(lambda job=job: job.refresh().state == "Queuing", 60)
    assert [j.priority for j in ws.jobs.list() if j.id in (low.id, mid.id, high.id)] == [9, 5, 1]

    # a Guest and a developer may not reorder the queue; out-of-range priorities are refused by name
    status, body = _put(server, f"/workspaces/default/jobs/{low.id}/priority", {"priority": 9}, "guest")
    assert status == 403 and "job.priority" in body["error"]["message"]
    rc, _, err = _pai(
        server, "dlc", "update", low.id, "--priority", "9", user="dev", monkeypatch=monkeypatch, capsys=capsys
    )
    assert rc == 2 and "may not job.priority" in err and "AlgorithmOps" in err
    status, body = _put(server, f"/workspaces/default/jobs/{low.id}/priority", {"priority": 10}, "ops")
    assert status in (400, 422) and body["error"]["field"] == "priority"
    # AlgorithmOps raises the low job to 9: level with `high`, submitted before it, so it goes first
    rc, out, err = _pai(
        server, "dlc", "update", low.id, "--priority", "9", user="ops", monkeypatch=monkeypatch, capsys=capsys
    )
    assert rc == 0, err
    assert f"[Info] Job [{low.id}] priority 9" in out
    assert ws.jobs.get(low.id).priority == 9
    # the Python client's door: AlgorithmOps lowers the job that cannot fit; a Guest is refused by role
    as_ops = server.client("ops").workspace("default").jobs.get(huge.id)
    assert as_ops.set_priority(3).priority == 3 and huge.refresh().priority == 3
    with pytest.raises(Forbidden, match=r"job\.priority"):
        server.client("guest").workspace("default").jobs.get(huge.id).set_priority(9)

    blocker.stop()
    for job in (low, mid, high):
        job.wait(timeout=120, poll=0.3)
        assert job.state == "Succeeded", job.reason
    started = sorted((low, mid, high), key=lambda j: j.started_at)
    assert [j.name for j in started] == ["low", "high", "mid"]
    assert huge.refresh().state == "Queuing"
    huge.stop()

    # a started job keeps its priority: changing it is a 409 that says why
    status, body = _put(server, f"/workspaces/default/jobs/{mid.id}/priority", {"priority": 2}, "ops")
    assert status == 409 and "only a job still waiting" in body["error"]["message"]


def _put(server, path: str, body: dict, user: str):
    import requests

    response = requests.put(
        f"{server.url.rstrip('/')}/pai-lab/api/v1{path}",
        json=body,
        timeout=30,
        headers={"Authorization": f"token {USER_TOKENS[user]}"},
    )
    return response.status_code, response.json()
