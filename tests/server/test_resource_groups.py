"""Resource groups: the server's operator adds a second Dask cluster (a scheduler and a worker process on
loopback), a workspace's Administrator chooses it, and that workspace's ranks run on its worker while
another workspace's stay on the embedded LocalCluster. Driven through the Python client and `pai eascmd`."""

from __future__ import annotations

import json

import pytest

from pai_lab.errors import BadInput, Forbidden
from tests.conftest import ROLE_OF, USER_TOKENS, start_pai_server
from tests.fixtures.training import wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_pai_server(tmp_path_factory.mktemp("groups") / "root")
    owner = server.client()
    team = owner.create_workspace("team_b")
    for user, role in ROLE_OF.items():
        owner.workspace("default").members.add(user, [role])
        team.members.add(user, [role])
    yield server
    server.stop()


def _pai(server, *argv: str, user: str = "owner", monkeypatch, capsys):
    from pai_lab.cli import main

    monkeypatch.setenv("PAI_LAB_URL", server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", server.token if user == "owner" else USER_TOKENS[user])
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _remote_workers(address: str) -> set[str]:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        return set(client.scheduler_info()["workers"])


def test_only_the_operator_adds_groups_and_only_an_admin_assigns_a_known_one(server, remote_dask):
    with pytest.raises(Forbidden, match="operator"):
        server.client("admin").resource_groups.add("second", remote_dask)
    with pytest.raises(BadInput) as bad:
        server.client().resource_groups.add("second", "not-an-address")
    assert bad.value.field == "scheduler_address"
    group = server.client().resource_groups.add("second", remote_dask)
    assert group.source == "added" and group.status == "ResourceReady"
    assert group.cores == 3 and group.gpus == 2 and len(group.workers) == 1

    with pytest.raises(Forbidden) as refused:
        server.client("dev").workspace("team_b").set_resource_group("second")
    assert refused.value.field == "role" and "AlgorithmDeveloper" in refused.value.message
    assert "resource.manage" in refused.value.message
    with pytest.raises(BadInput) as unknown:
        server.client("admin").workspace("team_b").set_resource_group("nowhere")
    assert unknown.value.field == "resource_group" and "second" in unknown.value.message
    assert server.client("admin").workspace("team_b").set_resource_group("second") == "second"
    assert server.client("guest").workspace("team_b").resource_group == "second"
    assert server.client("guest").workspace("default").resource_group == "default"


def test_a_workspaces_ranks_run_on_its_groups_workers_and_resource_li_shows_them(
    server, remote_dask, rank_script, monkeypatch, capsys
):
    if "second" not in [g.name for g in server.client().resource_groups]:
        server.client().resource_groups.add("second", remote_dask)
    server.client("admin").workspace("team_b").set_resource_group("second")
    remote = _remote_workers(remote_dask)

    team = server.client("dev").workspace("team_b")
    elsewhere = server.client("dev").workspace("default")
    sleeping = team.jobs.submit(name="remote", command=f"python {rank_script} --mode=sleep", workers=2)
    local = elsewhere.jobs.submit(name="local", command=f"python {rank_script} --mode=flags --lines=3", workers=1)
    wait_for(lambda: sleeping.refresh().state == "Running", 120)
    assert {p.worker for p in sleeping.pods} <= remote and all(p.worker for p in sleeping.pods)

    rc, out, err = _pai(
        server, "eascmd", "resource", "li", "second", "-w", "team_b", monkeypatch=monkeypatch, capsys=capsys
    )
    assert rc == 0, err
    assert all(p.name in out for p in sleeping.pods)
    rc, out, err = _pai(server, "eascmd", "resource", "ls", "--json", monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0, err
    listed = {g["name"]: g for g in json.loads(out)}
    assert listed["second"]["cpus"] == 3 and listed["second"]["cluster"] == remote_dask
    assert listed["second"]["workspaces"] == ["team_b"] and listed["default"]["instances"] >= 1

    local.wait(timeout=120, poll=0.3)
    assert local.state == "Succeeded", local.reason
    assert local.pods[0].worker and local.pods[0].worker not in remote  # the other workspace keeps the default
    sleeping.stop()
    assert sleeping.refresh().state == "Stopped"


def test_eascmd_resource_use_and_a_members_refusal(server, remote_dask, monkeypatch, capsys):
    if "second" not in [g.name for g in server.client().resource_groups]:
        server.client().resource_groups.add("second", remote_dask)
    rc, _, err = _pai(
        server,
        "eascmd",
        "resource",
        "use",
        "second",
        "-w",
        "team_b",
        user="dev",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert rc == 2 and "AlgorithmDeveloper" in err and "resource.manage" in err
    rc, out, err = _pai(
        server,
        "eascmd",
        "resource",
        "use",
        "default",
        "-w",
        "team_b",
        user="admin",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert rc == 0 and "[OK] Workspace [team_b] runs its jobs on resource [default]" in out, err


def test_pai_server_takes_resource_groups_from_its_flags(tmp_path, remote_dask):
    flagged = start_pai_server(tmp_path / "root", "--resource-group", f"pool={remote_dask}")
    try:
        groups = {g.name: g for g in flagged.client().resource_groups}
        assert groups["pool"].source == "configured" and groups["pool"].scheduler_address == remote_dask
        assert groups["pool"].cores == 3 and groups["default"].source == "embedded"
    finally:
        flagged.stop()
    with pytest.raises(RuntimeError, match="--resource-group expects NAME="):
        start_pai_server(tmp_path / "other", "--resource-group", "pool")


def test_each_group_has_its_own_line_of_waiting_jobs(server, remote_dask, rank_script):
    if "second" not in [g.name for g in server.client().resource_groups]:
        server.client().resource_groups.add("second", remote_dask)
    server.client("admin").workspace("team_b").set_resource_group("second")
    slots = server.client().resource_groups.get("default").cores
    here = server.client("dev").workspace("default")
    blocker = here.jobs.submit(name="blocker", command=f"python {rank_script} --mode=sleep", workers=slots)
    wait_for(lambda: blocker.refresh().state == "Running", 120)
    urgent = here.jobs.submit(name="urgent", command=f"python {rank_script} --mode=flags --lines=1", priority=9)
    wait_for(lambda: urgent.refresh().state == "Queuing" and "rank slots" in urgent.reason, 60)
    # a job bound for the other group does not wait behind the default group's line, whatever its priority
    other = (
        server.client("dev")
        .workspace("team_b")
        .jobs.submit(name="other", command=f"python {rank_script} --mode=flags --lines=1", priority=1)
    )
    other.wait(timeout=120, poll=0.3)
    assert other.state == "Succeeded", other.reason
    assert urgent.refresh().state == "Queuing"
    blocker.stop()
    urgent.wait(timeout=120, poll=0.3)
    assert urgent.state == "Succeeded", urgent.reason
