"""A pipeline step never sees the server's own cloud credentials (a real `pai server` started with them)."""

from __future__ import annotations

import os

import pytest

from pai_lab.pipelines import MetadataBuilder, Pipeline, PipelineArtifact, PipelineParameter, component
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
    # nor the SDKs' default files of the server's HOME (~/.aws/credentials, ~/.aws/config)
    assert f"AWS_SHARED_CREDENTIALS_FILE={os.devnull}" in logs and f"AWS_CONFIG_FILE={os.devnull}" in logs, logs


def _aws_lines(run, step: str) -> dict[str, str]:
    lines = run.get_logs(step, 0, 1000)
    return dict(line.split("=", 1) for line in lines if line.startswith("AWS_"))


def test_a_step_whose_artifact_lies_in_the_workspace_store_gets_that_stores_options(
    server_with_credentials, s3_server, s3_bucket
):
    bucket, options = s3_bucket
    ws = server_with_credentials.client().workspace("default")
    ws.set_storage(
        f"s3://{bucket}/models", {"endpoint_url": s3_server, "key": options["key"], "secret": options["secret"]}
    )

    @component(outputs=[PipelineArtifact("table", MetadataBuilder.fs_dataset())])
    def point():
        import os

        for key in sorted(os.environ):
            print(f"{key}={os.environ[key]}")
        return {"location": {"uri": f"s3://{bucket}/models/table/"}}

    @component(inputs=[PipelineArtifact("table", MetadataBuilder.fs_dataset(), required=True)])
    def look(context=None):
        import os

        for key in sorted(os.environ):
            print(f"{key}={os.environ[key]}")

    made = point.as_step(name="point")
    run = ws.pipelines.run(
        Pipeline(steps=[look.as_step(name="look", inputs={"table": made.outputs["table"]})]), cache=False
    )
    run.wait_for_completion(show_outputs=False, timeout=120)
    plain = _aws_lines(run, "point")  # no artifact in a bucket: no credentials at all
    assert not set(plain) & {*SERVER_AWS, "AWS_ENDPOINT_URL_S3"}, plain
    seen = _aws_lines(run, "look")
    assert seen["AWS_ACCESS_KEY_ID"] == options["key"] and seen["AWS_SECRET_ACCESS_KEY"] == options["secret"]
    assert seen["AWS_ENDPOINT_URL_S3"] == s3_server
    assert "AWS_SESSION_TOKEN" not in seen  # the server's own session token is not carried over either
