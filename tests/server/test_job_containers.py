"""A job whose *_image is a Docker image runs that role's ranks in containers (`docker run` on the worker),
through a `pai server` whose workers find a stand-in docker CLI: it lists one image, records each call
and runs the container's command on this machine with the variables and folder it was given."""

from __future__ import annotations

import json
import os
import sys

import pytest

from pai_lab.errors import BadInput
from tests.conftest import ROLE_OF, start_pai_server

FAKE_DOCKER = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[0] == "images":
    print("pai/trainer:1")
    sys.exit(0)
if args[0] != "run":
    sys.exit(0)
valued = {{"--name", "--label", "--network", "--security-opt", "--user", "--workdir", "--env", "--volume", "--tmpfs"}}
i, env, cwd = 1, {{"PATH": os.environ["PATH"]}}, "/"
while args[i].startswith("--"):
    if args[i] in valued:
        if args[i] == "--env":
            key, sep, value = args[i + 1].partition("=")
            env[key] = value if sep else os.environ.get(key, "")
        if args[i] == "--workdir":
            cwd = args[i + 1]
        i += 2
    else:
        i += 1
env["IN_CONTAINER"] = args[i]
command = args[i + 1 :]
if command[0] == "python":
    command[0] = sys.executable
os.chdir(cwd)
os.execve(command[0], command, env)
"""

PROBE = r"""
import json, os
print("in-container=" + os.environ.get("IN_CONTAINER", ""), flush=True)
print("task=" + json.dumps(json.loads(os.environ["TF_CONFIG"])["task"]), flush=True)
print("token-given=" + str(bool(os.environ.get("PAI_LAB_TOKEN"))), flush=True)
print("greeting=" + os.environ.get("GREETING", ""), flush=True)
import pai_lab.training as pai
pai.report(step=3, loss=0.5, accuracy=0.25)
"""


@pytest.fixture(scope="module")
def docker_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("containers")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    log = folder / "docker-calls.jsonl"
    (bin_dir / "docker").write_text(FAKE_DOCKER.format(python=sys.executable, log=str(log)))
    (bin_dir / "docker").chmod(0o755)
    mp = pytest.MonkeyPatch()
    mp.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    server = start_pai_server(folder / "root")
    for user, role in ROLE_OF.items():  # a shared server: a container sees what the sandbox shows
        server.client().workspace("default").members.add(user, [role])
    (server.root / "probe.py").write_text(PROBE)
    yield server, log
    server.stop()
    mp.undo()


def _calls(log) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_roles_ranks_run_in_the_named_image_with_the_sandboxs_view(docker_server):
    server, log = docker_server
    ws = server.client("dev").workspace("default")
    job = ws.jobs.submit(
        name="boxed",
        command="GREETING=hi python probe.py",
        workers=1,
        masters=1,  # a second role that ends by itself (a chief would end the worker when it is done)
        worker_image="pai/trainer:1",
    )
    job.wait(timeout=180, poll=0.3)
    assert job.state == "Succeeded", job.reason
    for index in (0,):
        lines = [x.line for x in job.log_lines(f"{job.id}-worker-{index}")]
        assert "in-container=pai/trainer:1" in lines and "token-given=True" in lines and "greeting=hi" in lines
        assert f'task={{"type": "worker", "index": {index}}}' in lines
    metrics = job.metrics()  # from the container's [metrics] lines, as from a pipe on the worker
    worker = metrics[metrics["pod"] == f"{job.id}-worker-0"]
    assert list(worker["step"]) == [3] and list(worker["loss"]) == [0.5] and list(worker["accuracy"]) == [0.25]
    master = [x.line for x in job.log_lines(f"{job.id}-master-0")]
    assert "in-container=" in master  # a role without an image runs on the worker as before

    runs = [c for c in _calls(log) if c[0] == "run" and f"pai_lab.pod={job.id}-worker-0" in c]
    assert len(runs) == 1
    run = runs[0]
    state = str(server.root.resolve() / ".pai_lab")
    output = str(server.root.resolve() / ".pai_lab" / "jobs" / job.id / "output")
    assert run[run.index("--network") + 1] == "host" and run[run.index("--name") + 1] == f"pai-{job.id}-worker-0"
    assert ["--tmpfs", state] == run[run.index("--tmpfs") : run.index("--tmpfs") + 2]  # the state folder hidden
    assert f"{output}:{output}" in run  # the job's output writable
    assert "PAI_LAB_TOKEN" in run and not any(a.startswith("PAI_LAB_TOKEN=") for a in run)  # by name only
    assert run[run.index("pai/trainer:1") + 1 : run.index("pai/trainer:1") + 3] == ["python", "probe.py"]
    removed = [c for c in _calls(log) if c[:2] == ["rm", "-f"]]
    assert ["rm", "-f", f"pai-{job.id}-worker-0"] in removed and ["rm", "-f", f"pai-{job.id}-master-0"] not in removed


def test_an_image_with_thirdparty_libs_or_unknown_is_a_400_naming_the_field(docker_server):
    server, _log = docker_server
    ws = server.client("dev").workspace("default")
    with pytest.raises(BadInput) as libs:
        ws.jobs.submit(name="x", command="python probe.py", worker_image="pai/trainer:1", thirdparty_libs=["six"])
    assert libs.value.field == "thirdparty_libs"
    with pytest.raises(BadInput) as unknown:
        ws.jobs.submit(name="x", command="python probe.py", worker_image="pai/other:2")
    assert unknown.value.field == "worker_image"
