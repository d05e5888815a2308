"""Resource groups over REST on the in-process server: one configured as c.TrainingManager.resource_groups
(a real Dask scheduler and worker on loopback), one added by the operator; who may do what, and the
answers that name the field."""

from __future__ import annotations

import pytest


@pytest.fixture
def jp_server_config(jp_server_config, remote_dask):
    # a dead scheduler is given up on after 3 s, not the default 15 s, so the test waits less
    return {
        **jp_server_config,
        "TrainingManager": {"resource_groups": {"configured": remote_dask}, "resource_group_timeout": 3},
    }


async def test_configured_and_added_groups_their_rules_and_a_workspaces_choice(api, members, remote_dask):
    await members("default")
    status, groups = await api("GET", "/resource-groups", user="guest")
    assert status == 200, groups
    by_name = {g["name"]: g for g in groups}
    assert by_name["default"]["source"] == "embedded" and by_name["default"]["workers"]
    configured = by_name["configured"]
    assert configured["source"] == "configured" and configured["status"] == "ResourceReady"
    assert configured["scheduler_address"] == remote_dask and configured["cores"] == 3 and configured["gpus"] == 2

    status, body = await api(
        "POST", "/resource-groups", {"name": "extra", "scheduler_address": remote_dask}, user="admin"
    )
    assert status == 403 and body["error"]["field"] == "role"
    status, body = await api("POST", "/resource-groups", {"name": "Bad Name", "scheduler_address": remote_dask})
    assert status == 400 and body["error"]["field"] == "name"
    status, body = await api("POST", "/resource-groups", {"name": "configured", "scheduler_address": remote_dask})
    assert status == 409
    status, body = await api("POST", "/resource-groups", {"name": "extra", "scheduler_address": remote_dask})
    assert status == 201 and body["source"] == "added" and body["created_by"] == "owner"

    status, body = await api("PUT", "/workspaces/default/resource-group", {"resource_group": "extra"}, user="ops")
    assert status == 403 and "AlgorithmOps" in body["error"]["message"] and body["error"]["field"] == "role"
    status, body = await api("PUT", "/workspaces/default/resource-group", {"resource_group": "gone"}, user="admin")
    assert status == 400 and body["error"]["field"] == "resource_group" and "configured" in body["error"]["message"]
    status, body = await api("PUT", "/workspaces/default/resource-group", {"resource_group": "x" * 500}, user="admin")
    assert status in (400, 422) and body["error"]["field"] == "resource_group"
    status, body = await api("PUT", "/workspaces/default/resource-group", {"resource_group": "extra"}, user="admin")
    assert status == 200 and body == {"resource_group": "extra"}
    status, body = await api("GET", "/resource-groups/extra", user="guest")
    assert body["workspaces"] == ["default"]

    status, body = await api("DELETE", "/resource-groups/extra")
    assert status == 409 and "move those workspaces" in body["error"]["message"]
    status, body = await api("DELETE", "/resource-groups/configured")
    assert status == 404 and "TrainingManager.resource_groups" in body["error"]["message"]
    status, _ = await api("PUT", "/workspaces/default/resource-group", {"resource_group": "configured"}, user="admin")
    assert status == 200
    status, _ = await api("DELETE", "/resource-groups/extra")
    assert status == 204
    status, body = await api("GET", "/workspaces/default/resource-group", user="guest")
    assert body == {"resource_group": "configured"}


async def test_a_group_whose_scheduler_does_not_answer_is_listed_so_and_its_jobs_wait(api, members, remote_dask):
    import asyncio

    from tests.conftest import free_port

    await members("default")
    dead = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    status, body = await api("POST", "/resource-groups", {"name": "dead", "scheduler_address": dead})
    assert status == 201 and body["status"] == "ResourceUnreachable" and body["message"], body
    status, groups = await api("GET", "/resource-groups")
    by_name = {g["name"]: g for g in groups}
    assert by_name["dead"]["status"] == "ResourceUnreachable" and by_name["configured"]["status"] == "ResourceReady"

    status, _ = await api("PUT", "/workspaces/default/resource-group", {"resource_group": "dead"}, user="admin")
    assert status == 200
    status, job = await api(
        "POST",
        "/workspaces/default/jobs",
        {"name": "waits", "command": "python -c 'print(1)'", "workers": 1},
        user="dev",
    )
    assert status == 201, job
    for _ in range(240):
        status, job = await api("GET", f"/workspaces/default/jobs/{job['id']}")
        if "scheduler at " + dead in job["reason"]:
            break
        await asyncio.sleep(0.5)
    assert job["state"] == "Queuing" and "waiting for the resource group's scheduler at " + dead in job["reason"]
    status, job = await api("POST", f"/workspaces/default/jobs/{job['id']}/stop", user="dev")
    assert status == 200 and job["state"] == "Stopped", job
