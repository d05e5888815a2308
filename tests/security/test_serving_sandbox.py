"""A team server whose instances need the sandbox and cannot have it refuses to deploy, and says how to fix it."""

from __future__ import annotations

import pytest

W = "/workspaces/default"


@pytest.fixture
def jp_server_config(jp_server_config, tmp_path):
    jp_server_config["PaiLabApp"]["bubblewrap_path"] = str(tmp_path / "no-such-bwrap")
    return jp_server_config


async def test_a_team_server_without_bubblewrap_refuses_to_deploy_and_stores_nothing(api, members, tmp_path):
    await members()  # a second user: instances run member code in the sandbox
    folder = tmp_path / "processor"
    folder.mkdir()
    (folder / "app.py").write_text("class Echo:\n    def process(self, data):\n        return data, 200\n")
    service = {
        "name": "test_unsandboxed",
        "processor_type": "python",
        "processor_path": str(folder),
        "processor_entry": "app.py",
        "metadata": {"instance": 1},
    }
    status, body = await api("POST", f"{W}/services", service, user="dev")
    assert status == 409, body
    error = body["error"]
    assert error["field"] == "job_sandbox", error
    assert "service instances" in error["message"] and "apt install bubblewrap" in error["message"], error
    assert "dask_scheduler_address" not in error["message"], error  # a remote cluster is no way out for them
    status, listed = await api("GET", f"{W}/services", user="dev")
    assert status == 200 and [s["name"] for s in listed] == [], listed
