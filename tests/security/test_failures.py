"""Failures are loud and 4xx: no credential is 401, Jupyter's authorizer applies, a control plane that
cannot load stops with the reason, and SIGTERM ends it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from jupyter_server.auth.authorizer import Authorizer

from pai_lab.server import ROUTERS
from tests.conftest import free_port, start_pai_server

# bodies a careless or hostile caller sends: none may reach a 5xx
ODD_BODIES = [
    b"[]",
    b"not json",
    b'{"name": 123}',
    json.dumps({"name": "x" * 5000}).encode(),
    b'{"workers": 99999999, "metadata": {"instance": 99999999}}',
    b'{"name": null, "labels": [""], "lines": [1], "spec": []}',
    b'{"to": "", "format": "itag"}',
]


class NoWritesForDev(Authorizer):
    """A read-only policy for one user, as JupyterHub's scopes can give (`read:...` without `write:...`)."""

    def is_authorized(self, handler, user, action, resource):
        return not (user.username == "dev" and action == "write")


@pytest.fixture
def jp_server_config(jp_server_config):
    config = json.loads(json.dumps(jp_server_config))
    config["ServerApp"]["authorizer_class"] = f"{__name__}.NoWritesForDev"
    return config


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/workspaces"),
        ("POST", "/workspaces/default/jobs"),
        ("DELETE", "/workspaces/default"),
        ("PATCH", "/workspaces/default"),
    ],
)
async def test_a_mutating_call_without_a_token_is_401_not_an_xsrf_403(api, method, path):
    status, err = await api(method, path, {"name": "w"} if method != "DELETE" else None, user=None)
    assert status == 401, err
    assert err["error"]["code"] == "unauthorized" and "token" in err["error"]["message"]
    status, spaces = await api("GET", "/workspaces")
    assert [w["name"] for w in spaces] == ["default"]


async def test_a_wrong_token_is_401_too(api):
    status, err = await api("POST", "/workspaces", {"name": "w"}, headers={"Authorization": "token nope"}, user=None)
    assert status == 401, err


async def test_jupyters_authorizer_makes_mutating_routes_403_for_a_read_only_user(api, members):
    await members("default")
    status, spaces = await api("GET", "/workspaces", user="dev")  # reading is still allowed
    assert status == 200 and [w["name"] for w in spaces] == ["default"]
    status, err = await api("POST", "/workspaces", {"name": "dev_team"}, user="dev")
    assert status == 403, err
    assert err["error"]["code"] == "forbidden" and "authorizer" in err["error"]["message"]
    status, err = await api(
        "POST", "/workspaces/default/jobs", {"name": "j", "command": "python -c 'print(1)'", "workers": 1}, user="dev"
    )
    assert status == 403, err
    status, spaces = await api("GET", "/workspaces")
    assert [w["name"] for w in spaces] == ["default"]
    # the policy is the authorizer's, not a blanket refusal: another member still writes
    status, ws = await api("POST", "/workspaces", {"name": "admin_team"}, user="admin")
    assert status == 201, ws


async def test_no_route_answers_5xx_to_odd_bodies(api, members):
    await members("default")
    failures = []
    for op in [op for router in ROUTERS for op in router.operations if op.method in ("POST", "PUT", "PATCH")]:
        path = op.path
        for param in op.params:
            path = path.replace("{" + param + "}", "default" if param == "workspace" else "x")
        for body in ODD_BODIES:
            for user in ("owner", "guest"):
                status, answer = await api(op.method, path, raw_body=body, user=user)
                if status >= 500:
                    failures.append((op.method, path, body[:40], user, status, answer))
    assert failures == []


def test_a_control_plane_that_cannot_load_stops_with_the_reason(tmp_path):
    root = tmp_path / "root"
    (root / ".pai_lab").mkdir(parents=True)
    (root / ".pai_lab" / "pai.db").write_bytes(b"this is not a database\n" * 1000)
    proc = subprocess.run(
        [sys.executable, "-m", "pai_lab", "server", "--root", str(root), "--port", str(free_port()), "--token", "tok"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "cannot start" in proc.stderr and "not a database" in proc.stderr, proc.stderr[-2000:]
    assert not (root / ".pai_lab" / "server.json").exists()  # no server was left answering


def test_sigterm_ends_a_running_server(tmp_path):
    server = start_pai_server(tmp_path / "root")
    client = server.client()
    assert client.workspace("default").info().name == "default"
    started = time.monotonic()
    os.kill(server.proc.pid, signal.SIGTERM)
    try:
        rc = server.proc.wait(30)
    finally:
        server.stop()
    assert time.monotonic() - started < 30
    assert rc is not None
    assert not server.runtime_file.exists()


class TestInsideJupyterLab:
    """The same damaged store under JupyterLab's server: Jupyter keeps working, and pai_lab's routes say
    why they cannot answer (503 with the reason) instead of a 404 that looks like a wrong URL."""

    @pytest.fixture
    def pai_root(self, tmp_path):
        root = tmp_path / "pai_root"
        (root / ".pai_lab").mkdir(parents=True)
        (root / ".pai_lab" / "pai.db").write_bytes(b"this is not a database\n" * 1000)
        return root

    async def test_pai_lab_routes_answer_503_with_the_reason(self, api, jp_fetch):
        for method, path in (("GET", "/workspaces"), ("POST", "/workspaces/default/jobs")):
            status, err = await api(method, path, {} if method == "POST" else None)
            assert status == 503, err
            assert "could not start" in err["error"]["message"] and "not a database" in err["error"]["message"]
        status, err = await api("GET", "/workspaces", user=None)
        assert status == 401  # the reason is for signed-in users only
        resp = await jp_fetch("api", "status")  # the rest of Jupyter still answers
        assert resp.code == 200
