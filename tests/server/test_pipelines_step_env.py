"""A pipeline step never sees the server's own cloud credentials (a real `pai server` started with them)."""

from __future__ import annotations

import pytest

from pai_lab.pipelines import Pipeline, PipelineParameter, component
from tests.conftest import start_pai_server

SERVER_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIASERVERONLY",
    "AWS_SECRET_ACCESS_KEY": "server-secret",
    "AWS_SESSION_TOKEN": "server-session",
}


@component(outputs=[PipelineParameter("seen", str)])
def print_environment():
    import os

    for key in sorted(os.environ):
        print(f"{key}={os.environ[key]}")
    return {"seen": ",".join(sorted(k for k in os.environ if k.startswith("AWS_")))}


@pytest.fixture
def server_with_credentials(tmp_path, monkeypatch):
    for key, value in SERVER_AWS.items():
        monkeypatch.setenv(key, value)
    server = start_pai_server(tmp_path / "root")
    yield server
    server.stop()


def test_a_step_that_prints_its_environment_sees_none_of_the_servers_aws_variables(server_with_credentials):
    ws = server_with_credentials.client().workspace("default")
    run = ws.pipelines.run(Pipeline(steps=[print_environment.as_step(name="env")]), cache=False)
    run.wait_for_completion(show_outputs=False, timeout=120)
    seen = run.detail.nodes[0].outputs
    logs = "\n".join(run.get_logs("env", 0, 1000))
    assert "PATH=" in logs  # the step did print its environment
    for key, value in SERVER_AWS.items():
        assert key not in logs and value not in logs
    assert "AWS_ACCESS_KEY_ID" not in str(seen)
