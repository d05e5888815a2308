"""PAI's ``PipelineRun.list`` and the README's pipeline snippet, against a real `pai server` and its Dask."""

from __future__ import annotations

import pandas as pd
import pytest

from pai_lab.client.pipelines import PipelineRun, PipelineRunError
from pai_lab.pipelines import (
    MetadataBuilder,
    Pipeline,
    PipelineArtifact,
    PipelineError,
    PipelineParameter,
    PipelineStep,
    component,
)


@component(outputs=[PipelineParameter("total", int)])
def total(n: int = 4):
    return {"total": sum(range(n))}


@component
def boom():
    raise SystemExit("this step fails")


def readme_pipeline():
    """The README's example, as written there."""
    step = total.as_step(name="total", inputs={"n": PipelineParameter("n", int, 4)})
    return Pipeline(steps=[step])


def test_the_readmes_pipeline_runs_and_its_runs_are_listed_as_pai_lists_them(live_server, unique_name):
    ws = live_server.client().create_workspace(unique_name("pl"))
    run = ws.pipelines.run(readme_pipeline(), arguments={"n": 10}, wait=True, show_outputs=False, timeout=120)
    assert {o.name: o.value for o in run.get_outputs()} == {"total": 45}
    assert [o.value for o in run.get_outputs(name="total", depth=2)] == [45]  # PAI's depth: nothing is nested
    with pytest.raises(PipelineError, match="depth 0"):
        run.get_outputs(depth=0)

    saved = total.save("summer", "v2", workspace=ws)
    with pytest.raises(PipelineError) as err:  # an unknown version names the step, the field and what there is
        PipelineStep(identifier="summer", version="v9", name="sum", workspace=ws)
    assert err.value.field == "steps.sum.version" and "saved versions: v2" in err.value.message
    again = ws.pipelines.run(saved, arguments={"n": 3}, name="again", wait=True, show_outputs=False, timeout=120)
    failed = ws.pipelines.run(boom, name="again")
    with pytest.raises(PipelineRunError):
        failed.wait_for_completion(show_outputs=False, timeout=120)

    listed = PipelineRun.list(workspace=ws)
    assert not isinstance(listed, list)  # a generator, as PAI's
    handles = list(listed)
    assert all(isinstance(h, PipelineRun) for h in handles)
    assert [h.id for h in handles] == [failed.id, again.id, run.id]  # newest first
    assert handles[1].get_outputs()[0].value == 3 and handles[1].detail.nodes  # a full handle
    assert [h.id for h in PipelineRun.list(workspace=ws, order="asc")] == [run.id, again.id, failed.id]
    assert [h.id for h in PipelineRun.list(name="again", workspace=ws)] == [failed.id, again.id]
    assert [h.id for h in PipelineRun.list(status="Succeeded", name="again", workspace=ws)] == [again.id]
    assert [h.id for h in PipelineRun.list(run_id=again.id, workspace=ws)] == [again.id]
    # a saved operator's id finds the runs of that operator
    assert [h.id for h in PipelineRun.list(pipeline_id=saved.pipeline_id, workspace=ws)] == [again.id]
    assert [h.id for h in PipelineRun.list(pipeline_id="summer@v2", workspace=ws)] == [again.id]
    by_name = [h.name for h in PipelineRun.list(sort_by="name", order="asc", workspace=ws)]
    assert by_name == sorted(by_name)
    assert next(PipelineRun.list(sort_by="GmtCreateTime", workspace=ws)).id == failed.id


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"sort_by": "size"}, "sort_by"), ({"order": "up"}, "order"), ({"status": "Done"}, "status")],
)
def test_bad_arguments_of_the_run_list_are_named_before_any_request(kwargs, field):
    with pytest.raises(PipelineError) as err:
        PipelineRun.list(workspace="nowhere", **kwargs)  # raises at the call, not at the first next()
    assert err.value.field == field and repr(next(iter(kwargs.values()))) in err.value.message


KERNEL = """
import os, sys, time
from pai_lab.pipelines import component

@component
def waits(gate: str = ""):
    import os, time
    while not os.path.exists(gate):
        time.sleep(0.1)
    print("the gate opened")

run = waits.run(job_name="outlives", arguments={"gate": sys.argv[1]}, wait=False, workspace=sys.argv[2])
print(run.id, flush=True)
time.sleep(600)  # a kernel that is killed while its run goes on
"""


def test_a_run_goes_on_to_succeeded_after_the_kernel_that_started_it_is_killed(live_server, unique_name, tmp_path):
    import subprocess
    import sys

    from tests.fixtures.training import wait_for

    ws = live_server.client().create_workspace(unique_name("pl"))
    gate = tmp_path / "gate"
    kernel = subprocess.Popen(
        [sys.executable, "-c", KERNEL, str(gate), ws.name],
        env=live_server.env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = kernel.stdout.readline().strip()
        wait_for(lambda: ws.pipelines.get(run_id).nodes[0].status == "Running")
    finally:
        kernel.kill()
        kernel.wait(timeout=30)
    gate.write_text("open")
    run = ws.pipelines.get(run_id).wait_for_completion(show_outputs=False, timeout=120)
    assert run.detail.status == "Succeeded" and run.get_logs(run.detail.nodes[0].name) == ["the gate opened"]


@component(
    inputs=[PipelineArtifact("table", MetadataBuilder.fs_dataset(), required=True)],
    outputs=[PipelineParameter("rows", int), PipelineParameter("version", str)],
)
def count_rows(context=None):
    table = context.input_artifacts["table"]
    return {"rows": len(table.read_dataframe()), "version": str(table.location.get("version"))}


def test_a_registered_dataset_is_an_artifact_a_step_reads_by_reference(live_server, unique_name, tmp_path):
    ws = live_server.client().create_workspace(unique_name("pl"))
    folder = tmp_path / "heart"
    folder.mkdir()
    pd.DataFrame({"age": [50, 61, 44]}).to_csv(folder / "table.csv", index=False)
    ws.datasets.register("heart", str(folder), scan=True)

    run = ws.pipelines.run(count_rows, arguments={"table": "pai_lab://datasets/heart"}, wait=True, show_outputs=False)
    assert {o.name: o.value for o in run.get_outputs()} == {"rows": 3, "version": "1"}
    step = run.detail.nodes[0]
    assert ws.pipelines.get(run.id).detail.nodes[0].name == step.name

    # a new version of the dataset is a new input: the step runs again instead of a cache hit
    pd.DataFrame({"age": [50, 61, 44, 70]}).to_csv(folder / "table.csv", index=False)
    ws.datasets.get("heart").new_version()
    again = ws.pipelines.run(count_rows, arguments={"table": "pai_lab://datasets/heart"}, wait=True, show_outputs=False)
    assert {o.name: o.value for o in again.get_outputs()} == {"rows": 4, "version": "2"}
    assert not again.detail.nodes[0].cached

    missing = ws.pipelines.run(count_rows, arguments={"table": "pai_lab://datasets/nothing"})
    with pytest.raises(PipelineRunError, match="nothing"):
        missing.wait_for_completion(show_outputs=False, timeout=120)
    (node,) = missing.detail.nodes  # the step fails, naming its input and the dataset
    assert node.status == "Failed" and f"steps.{node.name}.table: dataset 'nothing'" in node.reason


@component(
    inputs=[PipelineArtifact("model", MetadataBuilder.maxc_offlinemodel(), required=True)],
    outputs=[PipelineParameter("files", str), PipelineParameter("version", str)],
)
def list_model(context=None):
    import os

    model = context.input_artifacts["model"]
    return {"files": ",".join(sorted(os.listdir(model.local_path()))), "version": model.location["version"]}


def test_a_registered_model_is_an_artifact_a_step_reads_by_reference(live_server, unique_name, tmp_path):
    ws = live_server.client().create_workspace(unique_name("pl"))
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    (folder / "classes.txt").write_text("a\nb\n")
    ws.models.register("scorer", str(folder))
    ws.models.register("scorer", str(folder))

    reference = {"location": {"model": "scorer", "version": "1"}}
    run = ws.pipelines.run(list_model, arguments={"model": reference}, wait=True, show_outputs=False)
    assert {o.name: o.value for o in run.get_outputs()} == {"files": "classes.txt,saved_model.pb", "version": "1"}
    latest = ws.pipelines.run(list_model, arguments={"model": {"location": {"model": "scorer"}}}, wait=True)
    assert {o.name: o.value for o in latest.get_outputs()}["version"] == "2"


def test_the_cli_suspends_and_resumes_a_run_and_a_guest_is_refused(cli, live_server, unique_name, tmp_path):
    from tests.fixtures.training import wait_for

    ws = live_server.client().create_workspace(unique_name("pl"))
    ws.members.add("guest", ["Guest"])
    gate = tmp_path / "gate"

    @component(outputs=[PipelineParameter("v", int)])
    def gated():
        import os
        import time

        while not os.path.exists(gate):
            time.sleep(0.05)
        return {"v": 1}

    @component(inputs=[PipelineParameter("v", int)])
    def then(v: int):
        print("then ran")

    first = gated.as_step(name="gated")
    run = ws.pipelines.run(Pipeline(steps=[then.as_step(name="then", inputs={"v": first.outputs["v"]})]), cache=False)
    wait_for(lambda: run.refresh().nodes[0].status == "Running")
    rc, _, err = cli("pipeline", "suspend", run.id, "-w", ws.name, user="guest")
    assert rc != 0 and "Guest" in err
    rc, out, err = cli("pipeline", "suspend", run.id, "-w", ws.name)
    assert rc == 0 and "suspend requested" in out, err
    wait_for(lambda: run.refresh().status == "Suspended")
    gate.write_text("open")
    wait_for(lambda: run.refresh().nodes[0].status == "Succeeded")
    assert run.refresh().nodes[1].status == "Initialized"  # held: the next step has not started
    rc, out, err = cli("pipeline", "resume", run.id, "-w", ws.name)
    assert rc == 0 and "resume requested" in out, err
    wait_for(lambda: run.refresh().status != "Suspended")  # the driver takes the request up
    run.wait_for_completion(show_outputs=False, timeout=120)
    assert [n.status for n in run.detail.nodes] == ["Succeeded", "Succeeded"]
    rc, _, err = cli("pipeline", "resume", run.id, "-w", ws.name)  # nothing to resume: the server's 409
    assert rc != 0 and "only a suspended run can be resumed" in err
