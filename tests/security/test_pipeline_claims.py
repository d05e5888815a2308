"""A step's own files and pointers are its claims, probed as a member whose step turns them into links:
a ContainerOperator's mounts, a step's log and output files, a registered output's copy, and who may
register an output. None of them reaches the server's state folder (server.json, the owner's token)."""

from __future__ import annotations

import json

import pytest

from pai_lab.client.pipelines import PipelineRunError
from pai_lab.errors import Forbidden
from pai_lab.pipelines import (
    ContainerOperator,
    MetadataBuilder,
    Pipeline,
    PipelineArtifact,
    PipelineParameter,
    component,
)
from tests.server.test_pipelines_container import docker_server  # noqa: F401 - the docker stand-in's server

# ------------------------------------------------------------------ ContainerOperator inputs


@component(outputs=[PipelineArtifact("leak", MetadataBuilder.fs_dataset())])
def point_at(target: str = "", context=None):
    context.output_artifacts["leak"].write_output({"location": {"uri": f"file://{target}"}})


def _pointing_pipeline(target: str) -> Pipeline:
    first = point_at.as_step(name="point", inputs={"target": target})
    read = ContainerOperator(
        image_uri="python:3",
        command=["python", "-c", "print('read')"],
        inputs=[PipelineArtifact("data", MetadataBuilder.fs_dataset())],
    ).as_step(name="read", inputs={"data": first.outputs["leak"]})
    return Pipeline(steps=[read])


def test_a_container_step_mounts_only_inputs_the_policy_allows(docker_server):  # noqa: F811
    """A step's output pointer is its own claim: one at the state folder (or a file in it) is not mounted
    into the next step's container; one at a folder in the root is."""
    server, log = docker_server
    ws = server.client().workspace("default")
    state = server.root / ".pai_lab"
    (server.root / "shared").mkdir()
    for target, mounted in (
        (state, False),
        (state / "server.json", False),
        (server.root / "shared", True),
    ):
        log.unlink(missing_ok=True)
        run = ws.pipelines.run(
            _pointing_pipeline(str(target)), arguments={}, wait=True, show_outputs=False, timeout=120
        )
        assert run.detail.status == "Succeeded", run.detail.reason
        (argv,) = [a for a in map(json.loads, log.read_text().splitlines()) if a[0] == "run"]
        volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
        assert (f"{target}:{target}:ro" in volumes) is mounted, (target, volumes)
        assert not any(str(state) in v.split(":")[0] for v in volumes[1:]), volumes


def test_a_container_step_s_output_written_as_a_link_is_not_read(docker_server):  # noqa: F811
    """A container's (or a script's) outputs are read outside any sandbox: a parameter file it made a link to
    server.json is no output, and the token is in no value, reason or log line."""
    server, _log = docker_server
    ws = server.client().workspace("default")
    token_file = server.root / ".pai_lab" / "server.json"
    swap = (
        "import os\n"
        "os.makedirs('outputs/parameters', exist_ok=True)\n"
        f"os.symlink({str(token_file)!r}, 'outputs/parameters/leak')\n"
    )
    step = ContainerOperator(
        image_uri="python:3", command=["python", "-c", swap], outputs=[PipelineParameter("leak", str)]
    ).as_step(name="leak")
    run = ws.pipelines.run(Pipeline(steps=[step], outputs={"leak": step.outputs["leak"]}), arguments={})
    try:
        run.wait_for_completion(show_outputs=False, timeout=120)
    except PipelineRunError as exc:  # a link is no output: the step fails saying it wrote none
        assert server.token not in str(exc)
    seen = json.dumps([run.detail.model_dump(mode="json"), run.get_logs("leak")])
    assert server.token not in seen and '"token"' not in seen


# ------------------------------------------------------------------ a run's outputs


@component(outputs=[PipelineArtifact("model", MetadataBuilder.local_model())])
def name_model(model: str = "", context=None):
    context.output_artifacts["model"].write_output({"location": {"model": model}})


def test_a_guest_cannot_register_a_run_output_nor_leave_its_lineage(live_server, unique_name):
    """Registering an output that names a model already registered makes no new version but records
    lineage: it needs model.register all the same (a Guest only reads)."""
    owner = live_server.client().create_workspace(unique_name("outputs"))
    owner.members.add("guest", ["Guest"])
    folder = live_server.root / unique_name("saved")
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    owner._post("/models", {"name": "m", "path": str(folder)})
    run = owner.pipelines.run(
        Pipeline(steps=[name_model.as_step(name="make", inputs={"model": "m"})]),
        arguments={},
        wait=True,
        show_outputs=False,
        timeout=120,
    )
    assert run.detail.status == "Succeeded", run.detail.reason
    guest = live_server.client("guest").workspace(owner.name)
    with pytest.raises(Forbidden):
        guest._post(f"/pipelines/runs/{run.id}/outputs/model/register", {"name": "m"})
    assert owner._get("/lineage/model/m") == []
    made = owner._post(f"/pipelines/runs/{run.id}/outputs/model/register", {"name": "m"})
    assert made["lineage"]["run_id"] == run.id and made["lineage"]["created_by"] != "guest"


# ------------------------------------------------------------------ a step's own log, swapped


@component()
def swap_log(target: str = ""):
    import os

    log = os.path.join(os.environ["PAI_WORK_DIR"], "logs.txt")
    print("before the swap", flush=True)
    os.remove(log)
    os.symlink(target, log)


def test_a_step_that_swaps_its_log_for_a_link_cannot_read_the_state_through_it(live_server, unique_name):
    """A step writes its own folder: its logs.txt turned into a link to server.json is no log the server
    reads (page, tail, or the failure's last lines)."""
    ws = live_server.client().create_workspace(unique_name("swap"))
    token_file = live_server.root / ".pai_lab" / "server.json"
    step = swap_log.as_step(name="swap", inputs={"target": str(token_file)})
    run = ws.pipelines.run(Pipeline(steps=[step]), arguments={}, wait=True, show_outputs=False, timeout=120)
    assert run.detail.status == "Succeeded", run.detail.reason
    seen = json.dumps([run.get_logs("swap"), run.get_logs("swap", tail=50), run.detail.model_dump(mode="json")])
    assert live_server.token not in seen and '"token"' not in seen


@component(outputs=[PipelineParameter("leak", str), PipelineArtifact("pointer", MetadataBuilder.fs_dataset())])
def link_outputs(target: str = ""):
    import os

    work = os.environ["PAI_WORK_DIR"]
    for folder, name in (("parameters", "leak"), ("artifacts/pointer", "data")):
        os.makedirs(os.path.join(work, "outputs", folder), exist_ok=True)
        os.symlink(target, os.path.join(work, "outputs", folder, name))


def test_a_step_s_outputs_written_as_links_are_not_followed(live_server, unique_name):
    """A step's output files are its own claims: a parameter or pointer file that is a link to server.json
    is not read through (its value never becomes the token)."""
    ws = live_server.client().create_workspace(unique_name("links"))
    token_file = live_server.root / ".pai_lab" / "server.json"
    step = link_outputs.as_step(name="link", inputs={"target": str(token_file)})
    run = ws.pipelines.run(Pipeline(steps=[step]), arguments={})
    try:
        run.wait_for_completion(show_outputs=False, timeout=120)
    except PipelineRunError as exc:  # a dangling link is no output: the step fails saying so
        assert live_server.token not in str(exc)
    seen = json.dumps([run.detail.model_dump(mode="json"), run.get_logs("link")])
    assert live_server.token not in seen


@component(outputs=[PipelineArtifact("files", MetadataBuilder.fs_dataset())])
def files_with_a_link(target: str = "", context=None):
    import os

    folder = context.output_artifacts["files"].local_dir
    with open(os.path.join(folder, "a.txt"), "w") as f:
        f.write("a file of the step's own")
    os.symlink(target, os.path.join(folder, "leak.json"))


def test_registering_an_output_copies_no_file_through_a_link(live_server, unique_name):
    """A run's output is copied out of the state when it is registered: a link in it to server.json is
    left behind, never copied as a file of the dataset."""
    ws = live_server.client().create_workspace(unique_name("copy"))
    token_file = live_server.root / ".pai_lab" / "server.json"
    step = files_with_a_link.as_step(name="make", inputs={"target": str(token_file)})
    run = ws.pipelines.run(Pipeline(steps=[step]), arguments={}, wait=True, show_outputs=False, timeout=120)
    assert run.detail.status == "Succeeded", run.detail.reason
    made = ws._post(f"/pipelines/runs/{run.id}/outputs/files/register", {"kind": "dataset", "name": "copied"})
    assert made["kind"] == "dataset", made
    published = [p for p in (live_server.root / "pipeline-outputs").rglob("*") if p.is_file()]
    assert any(p.name == "a.txt" for p in published), published
    assert not any(live_server.token in p.read_text(errors="replace") for p in published), published
