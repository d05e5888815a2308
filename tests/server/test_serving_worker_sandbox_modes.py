"""The server's sandbox rule travels with an instance to a resource group's worker, which applies it with its
own bubblewrap: here a worker that has none (its PATH holds only Python). Where the server needs the sandbox
(``--job-sandbox bubblewrap``, or ``auto`` on a team server) the instance fails at once with a reason that
says what to install there, as a local instance would; where it does not (``auto`` with one user) it runs
as the worker's OS user, as remote ranks do. Driven through the Python client of a real `pai server`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psutil
import pytest

from pai_lab.errors import Unavailable
from tests.conftest import ROLE_OF, start_pai_server
from tests.fixtures.dask_processes import scheduler_and_worker

ECHO = """
import json


class Echo:
    def process(self, data):
        return json.dumps({"sum": sum(json.loads(data)["values"])}).encode(), 200
"""


@pytest.fixture(scope="module")
def worker_without_bubblewrap(tmp_path_factory):
    """A Dask scheduler and one worker whose PATH finds Python and nothing else (so no bwrap)."""
    with scheduler_and_worker(tmp_path_factory.mktemp("bare-dask"), path=str(Path(sys.executable).parent)) as found:
        yield found


def _server_on(root: Path, address: str, mode: str, team: bool):
    server = start_pai_server(root, "--job-sandbox", mode)
    owner = server.client()
    if team:  # a second user: auto asks for the sandbox
        for user, role in ROLE_OF.items():
            owner.workspace("default").members.add(user, [role])
    owner.resource_groups.add("bare", address)
    owner.workspace("default").set_resource_group("bare")
    return server


def _spec(folder: Path) -> dict:
    folder.mkdir()
    (folder / "app.py").write_text(ECHO)
    return {
        "name": "bare_echo",
        "processor_type": "python",
        "processor_path": str(folder),
        "processor_entry": "app.py",
        "processor_mainclass": "Echo",
        "metadata": {"instance": 1},
    }


def test_mode_bubblewrap_fails_an_instance_on_a_worker_without_it_with_what_to_do(worker_without_bubblewrap, tmp_path):
    server = _server_on(tmp_path / "root", worker_without_bubblewrap[0], "bubblewrap", team=False)
    try:
        with pytest.raises(Unavailable) as failed:
            server.client().workspace("default").services.create(_spec(tmp_path / "echo"), timeout=240, progress=False)
        message = str(failed.value)
        assert "job_sandbox is 'bubblewrap'" in message and "apt install bubblewrap" in message, message
        assert "Dask worker" in message, message
    finally:
        server.stop()


def test_mode_auto_on_a_team_server_fails_an_instance_on_a_worker_without_bubblewrap_with_what_to_install(
    worker_without_bubblewrap, tmp_path
):
    server = _server_on(tmp_path / "root", worker_without_bubblewrap[0], "auto", team=True)
    try:
        with pytest.raises(Unavailable) as failed:
            server.client().workspace("default").services.create(_spec(tmp_path / "echo"), timeout=240, progress=False)
        message = str(failed.value)
        users = 1 + len(ROLE_OF)
        assert f"this server has {users} users (job_sandbox 'auto')" in message, message
        assert "apt install bubblewrap" in message and "Dask worker" in message, message
    finally:
        server.stop()


def test_mode_auto_on_a_one_user_server_runs_an_instance_as_the_worker_s_user_where_the_worker_has_no_bubblewrap(
    worker_without_bubblewrap, tmp_path
):
    import requests

    address, worker_pid = worker_without_bubblewrap
    server = _server_on(tmp_path / "root", address, "auto", team=False)
    try:
        svc = (
            server.client().workspace("default").services.create(_spec(tmp_path / "echo"), timeout=240, progress=False)
        )
        (instance,) = svc.instances()
        assert instance.worker
        assert psutil.Process(instance.pid).ppid() == worker_pid  # no bubblewrap between them
        answer = requests.post(svc.endpoint, data=json.dumps({"values": [2, 3]}), headers={"Authorization": svc.token})
        assert answer.status_code == 200 and answer.json()["sum"] == 5, answer.text
        svc.delete()
    finally:
        server.stop()
