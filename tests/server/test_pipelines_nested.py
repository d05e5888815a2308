"""A saved pipeline as a step of another (PAI's composite component), run on a real `pai server` and Dask."""

from __future__ import annotations

from pai_lab.pipelines import Pipeline, PipelineParameter, PipelineStep, component


@component(outputs=[PipelineParameter("y", int)])
def add(x: int = 1, k: int = 1):
    print(f"{x} + {k}")
    return {"y": x + k}


def test_a_saved_pipeline_runs_as_a_step_and_a_second_run_reuses_its_sub_steps(live_server, unique_name):
    ws = live_server.client().create_workspace(unique_name("nest"))
    a = add.as_step(name="a", inputs={"x": PipelineParameter("x", int), "k": 1})
    b = add.as_step(name="b", inputs={"x": a.outputs["y"], "k": PipelineParameter("k", int, 10)})
    saved = Pipeline(steps=[b], outputs={"out": b.outputs["y"]}).save("plus-eleven", "v1", workspace=ws)

    first = add.as_step(name="first", inputs={"x": PipelineParameter("start", int, 5)})
    nested = PipelineStep("plus-eleven", version="v1", name="inner", inputs={"x": first.outputs["y"]}, workspace=ws)
    last = add.as_step(name="last", inputs={"x": nested.outputs["out"], "k": 100})
    outer = Pipeline(steps=[last], outputs={"result": last.outputs["y"], "middle": nested.outputs["out"]})

    run = ws.pipelines.run(outer, wait=True, show_outputs=False, timeout=180)
    assert run.detail.status == "Succeeded", run.detail.reason
    assert [n.name for n in run.detail.nodes] == ["first", "inner-a", "inner-b", "last"]
    assert {o.name: o.value for o in run.get_outputs()} == {"result": 6 + 11 + 100, "middle": 6 + 11}
    assert run.get_logs("inner-b") == ["7 + 10"]
    assert saved.manifest["spec"]["pipelines"]  # saved as a pipeline, run as its steps

    again = ws.pipelines.run(outer, arguments={"start": 5}, wait=True, show_outputs=False, timeout=180)
    assert {n.name: n.cached for n in again.detail.nodes} == dict.fromkeys(
        ["first", "inner-a", "inner-b", "last"], True
    )
    changed = ws.pipelines.run(outer, arguments={"start": 6}, wait=True, show_outputs=False, timeout=180)
    assert {o.name: o.value for o in changed.get_outputs()}["result"] == 7 + 11 + 100
