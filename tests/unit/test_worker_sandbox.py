"""What a resource group's worker does with the sandbox rule that comes with an instance's launch: it finds its
own bubblewrap; without one, mode ``bubblewrap`` (what a server that needs the sandbox sends, whether it was
set so or ``auto`` chose it) refuses with what to do, and a plan of mode ``auto`` (an older server's) runs the
instance as the worker's OS user. The plan sent there is the server's paths and the mode it resolved, never
the server's own program."""

from __future__ import annotations

import shutil

import pytest

from pai_lab.security.sandbox import bubblewrap_on_worker, for_worker, worker_settings


@pytest.fixture
def no_bubblewrap_here(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_a_worker_without_bubblewrap_runs_auto_as_is_and_refuses_bubblewrap(no_bubblewrap_here):
    assert bubblewrap_on_worker({"mode": "auto", "bubblewrap_path": ""}) is None
    with pytest.raises(RuntimeError) as refused:
        bubblewrap_on_worker({"mode": "bubblewrap", "bubblewrap_path": "/nowhere/bwrap"})
    assert "job_sandbox" in str(refused.value) and "apt install bubblewrap" in str(refused.value)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap on this machine")
def test_a_worker_with_bubblewrap_uses_its_own_even_when_the_servers_path_is_not_there():
    found = bubblewrap_on_worker({"mode": "auto", "bubblewrap_path": "/only/on/the/server/bwrap"})
    assert found == shutil.which("bwrap")


def test_the_plan_sent_to_a_worker_carries_the_mode_and_not_the_servers_program():
    settings = {"job_sandbox": "bubblewrap", "bubblewrap_path": "/opt/bwrap"}
    plan = {"bwrap": "/opt/bwrap", "read_only": ["/data"], "hidden": ["/data/.pai_lab"], "unavailable": "why"}
    sent = for_worker({**plan, **worker_settings(settings, 1)})
    assert sent == {
        "read_only": ["/data"],
        "hidden": ["/data/.pai_lab"],
        "mode": "bubblewrap",
        "reason": "job_sandbox is 'bubblewrap'",
        "bubblewrap_path": "/opt/bwrap",
    }


def test_a_server_whose_auto_mode_needs_the_sandbox_sends_bubblewrap_and_a_bare_worker_refuses(no_bubblewrap_here):
    sent = worker_settings({"job_sandbox": "auto"}, 3)
    assert sent["mode"] == "bubblewrap" and sent["reason"] == "this server has 3 users (job_sandbox 'auto')"
    with pytest.raises(RuntimeError) as refused:
        bubblewrap_on_worker(for_worker({"read_only": [], **sent}))
    message = str(refused.value)
    assert message.startswith("this server has 3 users") and "apt install bubblewrap" in message, message
    assert "Dask worker" in message and "job_sandbox='off'" in message
