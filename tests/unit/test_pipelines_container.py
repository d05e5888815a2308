"""ContainerOperator in the SDK: its manifest, the checks on it, the docker command a step would run, and
how the lack of Docker is found and said."""

from __future__ import annotations

import socket

import pytest

from pai_lab.pipelines import ContainerOperator, PipelineArtifact, PipelineError, PipelineParameter
from pai_lab.pipelines.container import docker_argv, docker_problem
from pai_lab.pipelines.manifest import check

PRINT_ENV = ["python", "-c", "import os; print('\\n'.join(['%s=%s' % (k, v) for k, v in os.environ.items()]));"]


def manual_operator() -> ContainerOperator:
    # the manual's example (5.2.4.2), its import changed
    return ContainerOperator(
        image_uri="python:3",
        inputs=[PipelineParameter(name="foo"), PipelineParameter(name="bar")],
        outputs=[],
        command=PRINT_ENV,
        env={"CustomEnvKey": "CustomEnvValue"},
    )


def test_the_manuals_container_operator_makes_pais_manifest_and_passes_the_servers_check():
    op = manual_operator()
    spec = op.to_dict()["spec"]
    assert spec["container"] == {"image": "python:3", "command": PRINT_ENV, "envs": {"CustomEnvKey": "CustomEnvValue"}}
    assert [p["name"] for p in spec["inputs"]["parameters"]] == ["foo", "bar"]
    graph = check(op.to_dict())  # the rules the server applies to what it receives
    assert [s.kind for s in graph.steps.values()] == ["container"]
    assert ContainerOperator("alpine", "echo hi").command == ["sh", "-c", "echo hi"]


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"image_uri": "--privileged", "command": ["true"]}, "image", "not an image reference"),
        ({"image_uri": "python:3", "command": []}, "command", "a list of 1 to 256 strings"),
        ({"image_uri": "python:3", "command": ["true", 3]}, "command", "a list of 1 to 256 strings"),
        ({"image_uri": "python:3", "command": ["true"], "env": {"1BAD": "x"}}, "envs", "not a variable name"),
        (
            {"image_uri": "python:3", "command": ["true"], "image_registry_config": {"password": "p"}},
            "imageRegistryConfig",
            "docker login",
        ),
    ],
)
def test_a_bad_container_operator_is_refused_naming_the_field(kwargs, field, words):
    with pytest.raises(PipelineError, match=words) as caught:
        ContainerOperator(**kwargs)
    assert caught.value.field.endswith(field)


def test_a_hand_written_manifest_with_a_bad_image_is_refused_like_the_sdks():
    manifest = manual_operator().to_dict()
    manifest["spec"]["container"]["image"] = "-v /:/host"
    with pytest.raises(PipelineError, match="not an image reference") as caught:
        check(manifest)
    assert caught.value.field.endswith("spec.container.image")


def test_the_docker_command_mounts_the_work_folder_and_the_inputs_and_passes_pais_variables():
    plan = {
        "run_id": "run-1",
        "node_id": "node-2",
        "work_dir": "/state/runs/run-1/step",
        "image": "python:3",
        "command": ["python", "-m", "main"],
        "env": {"CustomEnvKey": "CustomEnvValue"},
        "artifacts": {
            "table": {"location": {"uri": "file:///data/heart.csv"}},
            "remote": {"location": {"uri": "s3://bucket/key"}},
            "missing": None,
        },
    }
    argv = docker_argv(plan, {"PAI_WORK_DIR": "/state/runs/run-1/step", "PAI_RUN_ID": "run-1"}, user="1000:1000")
    assert argv == [
        "docker",
        "run",
        "--rm",
        "--name",
        "pai-run-1-node-2",
        "--label",
        "pai_lab.run=run-1",
        "--label",
        "pai_lab.node=node-2",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        "/state/runs/run-1/step:/work",
        "--workdir",
        "/work",
        "--user",
        "1000:1000",
        "--volume",
        "/data/heart.csv:/data/heart.csv:ro",  # the pointer stays true inside the container
        "--env",
        "CustomEnvKey=CustomEnvValue",
        "--env",
        "PAI_RUN_ID=run-1",
        "--env",
        "PAI_WORK_DIR=/work",
        "python:3",
        "python",
        "-m",
        "main",
    ]


def test_no_docker_is_found_and_said_with_what_to_use_instead(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert docker_problem() == "there is no docker binary on this worker's PATH"
    with pytest.raises(PipelineError, match=r"no docker binary.*ScriptOperator") as caught:
        manual_operator().run("containerTemplExample", {"foo": "this is foo", "bar": "this is bar"}, local_mode=True)
    assert caught.value.field == "local_mode"

    # a docker binary, but no daemon at the socket it would use
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    gone = f"unix://{tmp_path}/docker.sock"
    assert docker_problem(gone) == f"the Docker daemon is not reachable at {gone}"
    monkeypatch.setenv("DOCKER_HOST", gone)
    assert docker_problem() == f"the Docker daemon is not reachable at {gone}"

    # something answers at the socket: Docker counts as there
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / "docker.sock"))
        server.listen(1)
        assert docker_problem() is None


def test_artifacts_are_typed_inputs_of_a_container_operator():
    op = ContainerOperator("python:3", ["true"], inputs=[PipelineArtifact("table", required=True)])
    assert op.to_dict()["spec"]["inputs"]["artifacts"][0]["name"] == "table"
