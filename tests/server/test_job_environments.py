"""A job's ranks run with the interpreter of the environment its ``*_image`` names: a virtual environment
the operator lists in PAI_LAB_ENVIRONMENTS, on a shared `pai server` whose ranks run in the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROLE_OF, start_pai_server

PROBE = r"""
import os, sys
from pathlib import Path
print("executable=" + sys.executable, flush=True)
print("prefix=" + sys.prefix, flush=True)
state = Path(sys.argv[1]) / ".pai_lab"
print("state=" + ",".join(sorted(os.listdir(state))), flush=True)
"""


@pytest.fixture(scope="module")
def env_server(tmp_path_factory):
    """A venv made with --system-site-packages, listed for a `pai server` shared by a team."""
    folder = tmp_path_factory.mktemp("envs")
    venv = folder / "tf-env"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    mp = pytest.MonkeyPatch()
    mp.setenv("PAI_LAB_ENVIRONMENTS", str(venv))
    root = folder / "root"
    server = start_pai_server(root)
    owner = server.client()
    for user, role in ROLE_OF.items():  # several members: local ranks run in the sandbox
        owner.workspace("default").members.add(user, [role])
    (root / "probe.py").write_text(PROBE)
    yield server, venv
    server.stop()
    mp.undo()


def pai_against(server, monkeypatch, capsys):
    """`pai ...` in-process against ``server`` (the cli fixture's goes to the session's server)."""
    from pai_lab.cli import main

    def run(*argv: str):
        monkeypatch.setenv("PAI_LAB_URL", server.url)
        monkeypatch.setenv("PAI_LAB_TOKEN", server.token)
        capsys.readouterr()
        rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def test_ranks_run_with_the_chosen_venvs_python_inside_the_sandbox(env_server, monkeypatch, capsys):
    server, venv = env_server
    cli = pai_against(server, monkeypatch, capsys)
    # the CLI's own machine lists no environment: what it shows and accepts is the server's
    monkeypatch.delenv("PAI_LAB_ENVIRONMENTS")
    _rc, out, _ = cli("dlc", "get", "images", "--json")
    images = {i["image_url"]: i for i in json.loads(out)}
    assert images["local/venv/tf-env"]["image_url_vpc"] == str(venv / "bin" / "python")
    listed = server.client("guest").workspace("default").jobs.images(provider="Local")  # REST, any member
    assert [i.image_url for i in listed][1:] == ["local/venv/tf-env"] and listed[1].provider == "Local"
    from pai_lab.errors import BadInput

    with pytest.raises(BadInput) as caught:
        server.client().workspace("default").jobs.images(device="tpu")
    assert caught.value.field == "device" and "cpu or gpu" in caught.value.message
    rc, out, err = cli(
        "dlc",
        "submit",
        "tfjob",
        "--name=by-cli",
        "--command=python -c 'print(1)'",
        "--workers=1",
        "--worker_image=local/venv/tf-env",
        "--detach",
    )
    assert rc == 0, err
    jobs = server.client().workspace("default").jobs
    (found,) = jobs.list(name="by-cli")
    done = jobs.get(found.id)
    done.wait(timeout=180, poll=0.3)
    assert done.state == "Succeeded", done.reason

    ws = server.client("dev").workspace("default")
    job = ws.jobs.submit(
        name="in-venv",
        command=f"python probe.py {server.root}",
        workers=1,
        masters=1,  # a second role that ends by itself (a chief would end the worker when it is done)
        worker_image="local/venv/tf-env",
    )
    job.wait(timeout=180, poll=0.3)
    assert job.state == "Succeeded", job.reason
    worker = [x.line for x in job.log_lines(f"{job.id}-worker-0")]
    assert f"executable={venv / 'bin' / 'python'}" in worker and f"prefix={venv}" in worker
    # the sandbox still applies: the state folder shows the rank its job's folder, not the server's files
    state = next(x for x in worker if x.startswith("state=")).split("=", 1)[1].split(",")
    assert state == ["jobs"] and (server.root / ".pai_lab" / "server.json").exists()
    master = [x.line for x in job.log_lines(f"{job.id}-master-0")]
    assert f"executable={sys.executable}" in master  # a role without an image keeps the workers' Python


def test_a_docker_image_or_unknown_environment_is_a_400_naming_the_flag(env_server):
    server, _venv = env_server
    ws = server.client("dev").workspace("default")
    from pai_lab.errors import BadInput

    with pytest.raises(BadInput) as caught:
        ws.jobs.submit(name="nope", command="python -c 'print(1)'", workers=1, chief_image="local/venv/missing")
    assert caught.value.field == "chief_image" and "pai dlc get images" in caught.value.message
