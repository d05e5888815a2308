"""ContainerOperator steps on a real pai server: where the workers have no Docker the run fails at that step,
saying why and what to use instead (through the SDK and through REST); where they have it, the step gets
PAI's container contract and hands on its outputs."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest

from pai_lab.client.pipelines import PipelineRunError
from pai_lab.errors import BadInput
from pai_lab.pipelines import ContainerOperator, Pipeline, PipelineParameter, component
from pai_lab.pipelines.container import docker_problem
from tests.conftest import start_pai_server

no_docker_here = pytest.mark.skipif(docker_problem() is None, reason="Docker answers here: the steps would run")


@component(outputs=[PipelineParameter("greeting", str)])
def greet(name: str = "pai"):
    return {"greeting": f"hello {name}"}


def container_pipeline() -> Pipeline:
    first = greet.as_step(name="greet")
    shout = ContainerOperator(
        image_uri="python:3",
        command=["python", "-c", "import os; print(os.environ['PAI_INPUTS_PARAMETERS'])"],
        inputs=[PipelineParameter("text", str)],
        env={"CustomEnvKey": "CustomEnvValue"},
    ).as_step(name="shout", inputs={"text": first.outputs["greeting"]})
    return Pipeline(steps=[shout])


@no_docker_here
def test_a_container_step_fails_naming_the_missing_docker_and_the_script_operator(live_server, unique_name):
    ws = live_server.client().create_workspace(unique_name("container"))
    run = ws.pipelines.run(container_pipeline(), arguments={}, name="container")
    with pytest.raises(PipelineRunError, match="shout"):
        run.wait_for_completion(show_outputs=False, timeout=120)
    nodes = {n.name: n for n in run.detail.nodes}
    assert nodes["greet"].status == "Succeeded"  # the steps before it ran
    assert nodes["shout"].status == "Failed"
    reason = nodes["shout"].reason
    assert "a ContainerOperator step runs under Docker" in reason
    assert "no docker binary on this worker's PATH" in reason or "Docker daemon is not reachable at" in reason
    assert "ScriptOperator" in reason
    assert run.detail.reason.startswith("step 'shout' failed: a ContainerOperator step runs under Docker")


@no_docker_here
def test_over_rest_a_container_manifest_is_checked_then_its_run_fails_saying_why(live_server, unique_name):
    ws = live_server.client().create_workspace(unique_name("container"))
    manifest = container_pipeline().to_dict()

    bad = container_pipeline().to_dict()
    shout = next(s for s in bad["spec"]["pipelines"] if s["metadata"]["name"] == "shout")
    shout["spec"]["operator"]["spec"]["container"]["command"] = "rm -rf /"
    with pytest.raises(BadInput, match="command: a list of 1 to 256 strings") as caught:
        ws._post("/pipelines/runs", {"manifest": bad, "arguments": {}})
    assert "spec.container.command" in caught.value.field

    created = ws._post("/pipelines/runs", {"manifest": manifest, "arguments": {}, "name": "rest-container"})
    detail = ws._get(f"/pipelines/runs/{created['id']}")
    for _ in range(120):
        if detail["status"] in ("Failed", "Succeeded"):
            break
        detail = ws._get(f"/pipelines/runs/{created['id']}", params={"status": detail["status"], "wait": 5})
    assert detail["status"] == "Failed"
    assert "runs under Docker" in detail["reason"] and "ScriptOperator" in detail["reason"]


# A stand-in for the docker CLI (the one program a container step starts): it records its arguments and
# runs `run`'s command on this machine with the step's folder (mounted at /work) as its folder, so the
# container contract can be followed end to end on a machine without Docker.
FAKE_DOCKER = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[0] != "run":
    sys.exit(0)
valued = {{"--name", "--label", "--security-opt", "--volume", "--workdir", "--user", "--env"}}
i, mounts, env = 1, {{}}, {{"PATH": os.environ["PATH"]}}
while args[i].startswith("--"):
    if args[i] in valued:
        if args[i] == "--volume":
            source, target = args[i + 1].split(":")[:2]
            mounts[target] = source
        if args[i] == "--env":
            key, _, value = args[i + 1].partition("=")
            env[key] = value
        i += 2
    else:
        i += 1
work = mounts["/work"]
env["PAI_WORK_DIR"] = work
command = args[i + 1 :]
if command[0] == "python":
    command[0] = sys.executable
os.chdir(work)
os.execve(command[0], command, env)
"""

SHOUT = (
    "import json, os, pathlib, time\n"
    "given = {p['name']: p['value'] for p in json.loads(os.environ['PAI_INPUTS_PARAMETERS'])}\n"
    "assert pathlib.Path('inputs/parameters/text').read_text() == given['text']\n"
    "print('custom', os.environ['CustomEnvKey'], 'work', os.environ['PAI_WORK_DIR'], flush=True)\n"
    "if given['text'] == 'hello wait':\n"
    "    time.sleep(300)\n"
    "pathlib.Path('outputs/parameters/loud').write_text(given['text'].upper())\n"
)


@pytest.fixture
def docker_server(tmp_path, monkeypatch):
    """A pai server whose workers find a docker binary and a daemon socket (the stand-in above)."""

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker-calls.jsonl"
    (bin_dir / "docker").write_text(FAKE_DOCKER.format(python=sys.executable, log=str(log)))
    (bin_dir / "docker").chmod(0o755)
    daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    daemon.bind(str(tmp_path / "d.sock"))
    daemon.listen(64)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/d.sock")
    server = start_pai_server(tmp_path / "root")
    try:
        yield server, log
    finally:
        server.stop()
        daemon.close()


def loud_pipeline(name: str) -> Pipeline:
    first = greet.as_step(name="greet", inputs={"name": name})
    loud = ContainerOperator(
        image_uri="python:3",
        command=["python", "-c", SHOUT],
        inputs=[PipelineParameter("text", str)],
        outputs=[PipelineParameter("loud", str)],
        env={"CustomEnvKey": "CustomEnvValue"},
    ).as_step(name="loud", inputs={"text": first.outputs["greeting"]})
    return Pipeline(steps=[loud], outputs={"loud": loud.outputs["loud"]})


def test_with_docker_a_container_step_gets_pais_contract_and_hands_on_its_outputs(docker_server):
    server, log = docker_server
    ws = server.client().workspace("default")
    run = ws.pipelines.run(loud_pipeline("pai"), arguments={}, wait=True, show_outputs=False, timeout=120)
    assert run.detail.status == "Succeeded", run.detail.reason
    assert {o.name: o.value for o in run.get_outputs()} == {"loud": "HELLO PAI"}
    assert run.get_logs("loud")[0].startswith("custom CustomEnvValue work /")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    (argv,) = [c for c in calls if c[0] == "run"]
    assert argv[argv.index("--volume") + 1].endswith(":/work")
    assert "--user" in argv and "PAI_WORK_DIR=/work" in argv and "CustomEnvKey=CustomEnvValue" in argv
    assert argv[-4:-2] == ["python:3", "python"]

    # saved as the manual does, it is a step of later pipelines like any saved operator
    op = next(s for s in loud_pipeline("pai").steps if s.name == "loud").operator
    saved = ws.pipelines.save(op, "containerTemplExample", "v1")
    assert saved.manifest["spec"]["container"]["image"] == "python:3"
    assert [o.identifier for o in ws.pipelines.operators(identifier="containerTemplExample")] == [
        "containerTemplExample"
    ]
    again = saved.as_step(name="loud", inputs={"text": "from the registry"})
    rerun = ws.pipelines.run(Pipeline(steps=[again]), arguments={}, wait=True, show_outputs=False, timeout=120)
    assert {o.name: o.value for o in rerun.get_outputs()} == {"loud": "FROM THE REGISTRY"}

    # a container step terminated while it runs: its container is removed by name
    waiting = ws.pipelines.run(loud_pipeline("wait"), arguments={}, name="waiting")
    detail = waiting.detail
    for _ in range(60):
        if any(n.name == "loud" and n.status == "Running" for n in detail.nodes):
            break
        detail = waiting.refresh(changed_from=detail.status, wait=1)
    waiting.terminate()
    for _ in range(60):
        if detail.status == "Terminated":
            break
        detail = waiting.refresh(changed_from=detail.status, wait=5)
    assert detail.status == "Terminated"
    removed = [c for c in map(json.loads, log.read_text().splitlines()) if c[0] == "rm"]
    node_id = next(n.node_id for n in detail.nodes if n.name == "loud")
    assert removed == [["rm", "-f", f"pai-{waiting.id}-{node_id}"]]
