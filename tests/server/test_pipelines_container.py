"""A ContainerOperator step on a server whose workers have no Docker: the run fails at that step, saying why
and what to use instead; through the SDK and through REST."""

from __future__ import annotations

import pytest

from pai_lab.client.pipelines import PipelineRunError
from pai_lab.errors import BadInput
from pai_lab.pipelines import ContainerOperator, Pipeline, PipelineParameter, component
from pai_lab.pipelines.container import docker_problem

pytestmark = pytest.mark.skipif(docker_problem() is None, reason="Docker answers here: the steps would run")


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
