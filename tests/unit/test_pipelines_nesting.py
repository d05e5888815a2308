"""Pipelines as steps: a step that runs a pipeline becomes that pipeline's steps, wired to the outer graph."""

from __future__ import annotations

import pytest

from pai_lab.pipelines import (
    MetadataBuilder,
    Pipeline,
    PipelineArtifact,
    PipelineError,
    PipelineParameter,
    PipelineStep,
    component,
)
from pai_lab.pipelines.manifest import check


@component(outputs=[PipelineParameter("y", int)])
def add(x: int = 1, k: int = 1):
    return {"y": x + k}


@component(inputs=[PipelineArtifact("table", MetadataBuilder.fs_dataset(), required=True)])
def read(table=None):
    pass


def inner_pipeline():
    a = add.as_step(name="a", inputs={"x": PipelineParameter("x", int), "k": 1})
    b = add.as_step(name="b", inputs={"x": a.outputs["y"], "k": PipelineParameter("k", int, 10)})
    return Pipeline(steps=[b], outputs={"out": b.outputs["y"]})


def test_a_pipeline_step_becomes_its_steps_wired_to_the_outer_graph():
    first = add.as_step(name="first", inputs={"x": 5})
    nested = PipelineStep(operator=inner_pipeline(), name="inner", inputs={"x": first.outputs["y"]})
    last = add.as_step(name="last", inputs={"x": nested.outputs["out"], "k": 100})
    outer = Pipeline(steps=[last], outputs={"result": last.outputs["y"], "middle": nested.outputs["out"]})

    graph = outer.graph_info
    assert list(graph.steps) == ["first", "inner-a", "inner-b", "last"]
    assert {n: s.depends for n, s in graph.steps.items()} == {
        "first": [],
        "inner-a": ["first"],  # the first sub-step waits on what the step waited on
        "inner-b": ["inner-a"],
        "last": ["inner-b"],  # what waited on the step waits on its last sub-step
    }
    a = graph.steps["inner-a"].parameters
    assert (a["x"].source, a["x"].step, a["x"].name) == ("step", "first", "y")  # the outer step's argument
    assert graph.steps["inner-b"].parameters["k"].value == 10  # the inner pipeline's default
    assert graph.outputs["middle"][1].step == "inner-b"
    # the manifest keeps the nesting (a saved pipeline runs as it was saved); the server expands it again
    assert {s["metadata"]["name"] for s in outer.to_dict()["spec"]["pipelines"]} == {"first", "inner", "last"}
    assert list(check(outer.to_dict()).steps) == list(graph.steps)


def test_pipelines_nest_in_pipelines():
    middle = Pipeline(
        steps=[PipelineStep(operator=inner_pipeline(), name="deep", inputs={"x": PipelineParameter("x", int, 2)})],
    )
    outer = Pipeline(steps=[PipelineStep(operator=middle, name="top", inputs={"x": 3})])
    assert list(outer.graph_info.steps) == ["top-deep-a", "top-deep-b"]
    assert outer.graph_info.steps["top-deep-a"].parameters["x"].value == 3


def test_bad_nesting_is_named_with_the_step_and_the_field():
    with pytest.raises(PipelineError) as err:  # the inner pipeline's x has no default and is not given
        Pipeline(steps=[PipelineStep(operator=inner_pipeline(), name="inner")])
    assert err.value.field == "steps.inner.x" and "not connected" in err.value.message

    doc = Pipeline(
        steps=[
            add.as_step(
                name="after",
                inputs={"x": PipelineStep(operator=inner_pipeline(), name="inner", inputs={"x": 1}).outputs["out"]},
            )
        ]
    ).to_dict()
    after = next(s for s in doc["spec"]["pipelines"] if s["metadata"]["name"] == "after")
    after["spec"]["arguments"]["parameters"][0]["from"] = "{{pipelines.inner.outputs.parameters.nope}}"
    with pytest.raises(PipelineError) as err:
        check(doc)
    assert err.value.field == "steps.after.x" and "no such parameter output" in err.value.message

    with pytest.raises(PipelineError) as err:
        Pipeline(steps=[PipelineStep(operator=inner_pipeline(), name="n" * 63, inputs={"x": 1})])
    assert err.value.field == f"steps.{'n' * 63}.name" and "shorten" in err.value.message

    deep = inner_pipeline()
    with pytest.raises(PipelineError) as err:
        for level in range(8):
            step = PipelineStep(operator=deep, name=f"l{level}", inputs={"x": PipelineParameter("x", int, 1)})
            deep = Pipeline(steps=[step])
    assert "nest more than 5 deep" in err.value.message
