"""A job's ranks reach S3 with the workspace's storage options, never with the server's own credentials:
here the server's environment holds AWS credentials, and the ranks of its embedded cluster see none of them;
a job whose checkpointDir lies in the workspace's store gets that store's key and endpoint instead."""

from __future__ import annotations

import pytest

from tests.conftest import start_pai_server

pytestmark = pytest.mark.s3

SCRIPT = """
import os
for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "PAI_LAB_MODEL_URI"):
    print(f"{name}=" + os.environ.get(name, "<unset>"))
"""


def _seen(job) -> dict[str, str]:
    job.wait(timeout=120, poll=0.3)
    assert job.state == "Succeeded", job.reason
    return dict(line.split("=", 1) for line in job.logs(0).splitlines() if line.startswith(("AWS_", "PAI_LAB_")))


def test_ranks_get_the_workspace_storage_and_never_the_servers_credentials(tmp_path, s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "the-servers-own-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-servers-own-secret")
    code = tmp_path / "code"
    code.mkdir()
    (code / "env.py").write_text(SCRIPT)
    bucket, options = s3_bucket
    server = start_pai_server(tmp_path / "root")
    try:
        ws = server.client().workspace("default")
        run = {"workers": 1, "code_source": str(code), "command": "python /root/code/env.py"}

        plain = _seen(ws.jobs.submit(name="no-store", **run))
        assert plain["AWS_ACCESS_KEY_ID"] == plain["AWS_SECRET_ACCESS_KEY"] == "<unset>"

        ws.set_storage(f"s3://{bucket}/store/", options)
        inside = _seen(ws.jobs.submit(name="in-store", checkpointDir=f"s3://{bucket}/store/ckpt/", **run))
        assert inside["AWS_ACCESS_KEY_ID"] == options["key"]
        assert inside["AWS_SECRET_ACCESS_KEY"] == options["secret"]
        assert inside["AWS_ENDPOINT_URL_S3"] == options["client_kwargs"]["endpoint_url"]
        assert inside["PAI_LAB_MODEL_URI"] == "<unset>"  # the embedded cluster keeps the model in the job's folder

        outside = _seen(ws.jobs.submit(name="off-store", checkpointDir=f"s3://{bucket}/elsewhere/", **run))
        assert outside["AWS_ACCESS_KEY_ID"] == "<unset>"
    finally:
        server.stop()
