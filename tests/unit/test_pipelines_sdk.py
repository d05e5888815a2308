"""The Pipeline SDK under PAI's names: operators, steps, pipelines, the manifest and its rules."""

from __future__ import annotations

import json

import pytest

from pai_lab.pipelines import (
    DataType,
    FunctionOperator,
    MetadataBuilder,
    Pipeline,
    PipelineArtifact,
    PipelineError,
    PipelineParameter,
    PipelineRunStatus,
    PipelineStep,
    ScriptOperator,
    component,
    dumps,
    loads,
)
from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines.status import run_status


@pytest.fixture
def scripts(tmp_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "main.py").write_text("import argparse\nprint('hello')\n")
    (folder / "util.py").write_text("X = 1\n")
    return folder


def dataset():
    return MetadataBuilder.fs_dataset()


@component(outputs=[PipelineArtifact("outputTable", dataset())])
def read(source: str = "x"):
    return None


@component(
    inputs=[PipelineArtifact("inputTable", dataset(), required=True), PipelineParameter("fraction", float, 0.8)],
    outputs=[PipelineArtifact("output1Table", dataset()), PipelineArtifact("output2Table", dataset())],
)
def split(fraction: float):
    return None


@component(
    inputs=[PipelineArtifact("inputTable", dataset(), required=True)],
    outputs=[PipelineArtifact("model", MetadataBuilder.local_model())],
)
def train():
    return None


@component(
    inputs=[
        PipelineArtifact("model", MetadataBuilder.local_model(), required=True),
        PipelineArtifact("inputTable", dataset(), required=True),
    ],
    outputs=[PipelineArtifact("outputMetricTable", MetadataBuilder.model_evaluation())],
)
def evaluate():
    return None


def test_the_manual_script_operator_runs_with_either_spelling(scripts):
    manual = ScriptOperator(
        entry_point="main.py",
        script_dir=str(scripts),
        inputs=[PipelineParameter(name="foo", default=10), PipelineParameter(name="bar", default=10)],
        outputs=[],
        identifier="simpleExample",
    )
    sdk = ScriptOperator(
        entry_file="main.py",
        source_dir=str(scripts),
        identifier="simpleExample",
        inputs=[PipelineParameter("foo", default=10), PipelineParameter("bar", default=10)],
    )
    assert manual.to_dict() == sdk.to_dict()
    doc = loads(manual.to_yaml())
    assert doc["apiVersion"] == "core/v1"
    assert doc["metadata"]["identifier"] == "simpleExample" and doc["metadata"]["version"] == "v1"
    assert [p["name"] for p in doc["spec"]["inputs"]["parameters"]] == ["foo", "bar"]
    assert doc["spec"]["script"]["entryFile"] == "main.py"
    # content-addressed: the same files pack to the same digest; a change gives another
    first = doc["spec"]["script"]["code"]["sha256"]
    (scripts / "util.py").write_text("X = 2\n")
    again = ScriptOperator(entry_file="main.py", source_dir=str(scripts), identifier="simpleExample")
    assert again.to_dict()["spec"]["script"]["code"]["sha256"] != first


def test_a_script_outside_its_folder_or_missing_is_refused(scripts, tmp_path):
    (tmp_path / "other.py").write_text("")
    with pytest.raises(PipelineError) as err:
        ScriptOperator(entry_file=str(tmp_path / "other.py"), source_dir=str(scripts))
    assert err.value.field == "entry_file" and "top level" in err.value.message
    with pytest.raises(PipelineError, match="not a file"):
        ScriptOperator(entry_file="missing.py", source_dir=str(scripts))


def test_parameter_types_take_python_types_and_names():
    assert PipelineParameter("a", int).typ.value == "Int"
    assert PipelineParameter("b", "double").typ.value == "Double"
    assert PipelineParameter("c", dict).typ.value == "Map"
    assert PipelineParameter("d", default=1).required is False
    assert PipelineParameter("e").required is True
    with pytest.raises(PipelineError, match="unknown parameter type"):
        PipelineParameter("f", set)


def test_the_compatibility_rule_equal_types_or_any():
    any_ = MetadataBuilder.any()
    assert dataset().compatible_with(any_) and any_.compatible_with(MetadataBuilder.local_model())
    assert dataset().compatible_with(MetadataBuilder.local_dataset())  # same DataType, another location
    assert not dataset().compatible_with(MetadataBuilder.local_model())
    assert MetadataBuilder.local_model().data_type == DataType.Model


def heart_like():
    table = PipelineArtifact("inputTable", dataset(), required=True)
    fraction = PipelineParameter("fraction", float, 0.8)
    split_step = split.as_step(name="split-1", inputs={"inputTable": table, "fraction": fraction})
    train_step = train.as_step(inputs={"inputTable": split_step.outputs["output1Table"]})
    eval_step = evaluate.as_step(
        name="evaluate-1", inputs={"model": train_step.outputs["model"], "inputTable": split_step.outputs[1]}
    )
    return Pipeline(
        steps=[eval_step],
        outputs={"model": train_step.outputs["model"], "evaluateResult": eval_step.outputs["outputMetricTable"]},
    )


def test_steps_and_inputs_are_inferred_from_the_outputs_and_named_as_pai_does():
    p = heart_like()
    assert sorted(s.name for s in p.steps) == ["evaluate-1", "split-1", "train-1"]
    assert [v.name for v in p.inputs] == ["fraction", "inputTable"]  # parameters first
    assert list(p.graph_info.steps) == ["split-1", "train-1", "evaluate-1"]  # running order
    assert p.graph_info.steps["evaluate-1"].depends == ["train-1", "split-1"]
    spec = p.to_dict()["spec"]
    assert [o["name"] for o in spec["outputs"]["artifacts"]] == ["model", "evaluateResult"]
    assert spec["outputs"]["artifacts"][0]["from"] == "{{pipelines.train-1.outputs.artifacts.model}}"
    evaluate_step = next(s for s in spec["pipelines"] if s["metadata"]["name"] == "evaluate-1")
    args = {a["name"]: a for a in evaluate_step["spec"]["arguments"]["artifacts"]}
    assert args["inputTable"]["from"] == "{{pipelines.split-1.outputs.artifacts.output2Table}}"


def test_the_manifest_round_trips_through_yaml_and_json_and_is_checked_again():
    p = heart_like()
    for fmt in ("yaml", "json"):
        doc = loads(dumps(p.to_dict(), fmt))
        graph = manifests.check(doc)
        assert list(graph.steps) == list(p.graph_info.steps)
        assert set(graph.outputs) == {"model", "evaluateResult"}
    assert json.loads(p.to_json())["spec"]["pipelines"][0]["metadata"]["name"]


def test_a_cycle_is_refused_naming_its_steps():
    a = read.as_step(name="a")
    b = read.as_step(name="b")
    a.after(b)
    b.after(a)
    with pytest.raises(PipelineError) as err:
        Pipeline(steps=[a])
    assert "cycle" in err.value.message and "'a'" in err.value.message and "'b'" in err.value.message


def test_an_unconnected_required_input_names_the_step_and_the_input():
    step = train.as_step(name="train-x")
    with pytest.raises(PipelineError) as err:
        Pipeline(steps=[step])
    assert err.value.field == "steps.train-x.inputTable"
    assert "required input 'inputTable' is not connected" in err.value.message


def test_type_mismatches_name_the_step_and_the_input():
    source = read.as_step(name="source")
    bad = evaluate.as_step(
        name="judge", inputs={"model": source.outputs["outputTable"], "inputTable": source.outputs["outputTable"]}
    )
    with pytest.raises(PipelineError) as err:
        Pipeline(steps=[bad])
    assert err.value.field == "steps.judge.model" and "DataSet does not match Model" in err.value.message
    wrong = split.as_step(name="s", inputs={"inputTable": source.outputs[0], "fraction": PipelineParameter("f", str)})
    with pytest.raises(PipelineError) as err:
        Pipeline(steps=[wrong])
    assert err.value.field == "steps.s.fraction" and "String parameter where a Double" in err.value.message
    with pytest.raises(PipelineError) as err:
        split.as_step(name="t", inputs={"fractoin": 0.5})
    assert "'fractoin' is not an input" in err.value.message


def test_a_raw_manifest_gets_the_same_rules(tmp_path):
    doc = heart_like().to_dict()
    split_step = next(s for s in doc["spec"]["pipelines"] if s["metadata"]["name"] == "split-1")
    split_step["spec"]["dependencies"] = ["evaluate-1"]  # split waits on its own consumer
    with pytest.raises(PipelineError, match="cycle"):
        manifests.check(doc)
    doc = heart_like().to_dict()
    train_step = next(s for s in doc["spec"]["pipelines"] if s["metadata"]["name"] == "train-1")
    train_step["spec"]["arguments"]["artifacts"][0]["from"] = "{{pipelines.nowhere.outputs.artifacts.x}}"
    with pytest.raises(PipelineError) as err:
        manifests.check(doc)
    assert err.value.field == "steps.train-1.inputTable" and "'nowhere'" in err.value.message
    doc = heart_like().to_dict()
    doc["spec"]["pipelines"][0]["metadata"]["name"] = "bad name!"
    with pytest.raises(PipelineError, match="name is not allowed"):
        manifests.check(doc)
    doc = heart_like().to_dict()
    doc["spec"]["pipelines"] = doc["spec"]["pipelines"] * 400
    with pytest.raises(PipelineError, match="at most 1000"):
        manifests.check(doc)


def test_an_operator_manifest_is_a_one_step_pipeline():
    graph = manifests.check(split.to_dict())
    assert list(graph.steps) == ["split"]
    assert [v.name for v in graph.inputs] == ["fraction", "inputTable"]
    assert set(graph.outputs) == {"output1Table", "output2Table"}


def test_function_operators_take_their_signature_and_stay_callable():
    def scale(x: int, factor: float = 2.0, note: str = "", context=None):
        return {"y": x * factor}

    op = FunctionOperator(scale, outputs=[PipelineParameter("y", float)])
    assert [(v.name, v.typ.value, v.default) for v in op.inputs] == [
        ("x", "Int", None),
        ("factor", "Double", 2.0),
        ("note", "String", ""),
    ]
    assert op(3) == {"y": 6.0}
    assert op.identifier == "scale" and "pickle" in op.to_dict()["spec"]["function"]


def test_a_step_needs_an_operator():
    with pytest.raises(PipelineError, match="needs an operator") as err:
        PipelineStep()
    assert err.value.field == "identifier"


def test_the_dag_as_graphviz_text_and_html():
    p = heart_like()
    text = p.graph(status={"split-1": "Succeeded", "train-1": "Failed"})
    assert '"split-1" -> "train-1";' in text and '"train-1" -> "evaluate-1";' in text
    assert "Failed" in text
    html = p.dot()._repr_html_()
    assert "split-1" in html and ("<table" in html or "<svg" in html)
    assert str(p.dot()) == p.graph()


def test_arguments_are_typed_and_bad_ones_named():
    var = PipelineParameter("n", int)
    assert manifests.coerce(var, "3", "arguments.n") == 3
    with pytest.raises(PipelineError) as err:
        manifests.coerce(var, "three", "arguments.n")
    assert err.value.field == "arguments.n" and err.value.status == 400
    assert manifests.coerce(PipelineParameter("m", dict), '{"a": 1}', "m") == {"a": 1}
    assert manifests.coerce(PipelineParameter("b", bool), "false", "b") is False


def test_pai_states_verbatim_and_the_run_level_rules():
    assert len(PipelineRunStatus.ALL) == 11
    assert [s for s in PipelineRunStatus.ALL if PipelineRunStatus.is_running(s)] == [
        "ReadyToSchedule",
        "Starting",
        "Running",
        "WorkflowServiceStarting",
    ]
    assert run_status({"a": "Succeeded", "b": "Running"}) is None
    assert run_status({"a": "Succeeded", "b": "Failed", "c": "Skipped"}) == "Failed"
    assert run_status({"a": "Terminated", "b": "Skipped"}) == "Terminated"
    assert run_status({"a": "Succeeded", "b": "Skipped"}) == "Succeeded"


def _json_values():
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda kids: (
            st.lists(kids, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "name",
                        "type",
                        "value",
                        "from",
                        "metadata",
                        "spec",
                        "inputs",
                        "outputs",
                        "parameters",
                        "artifacts",
                        "pipelines",
                        "arguments",
                        "operator",
                        "function",
                        "pickle",
                        "script",
                        "entryFile",
                        "code",
                        "archive",
                        "dependencies",
                        "required",
                        "apiVersion",
                    ]
                ),
                kids,
                max_size=4,
            )
        ),
        max_leaves=20,
    )


def test_any_manifest_is_checked_or_refused_never_crashes():
    from hypothesis import HealthCheck, given, settings

    base = heart_like().to_dict()

    @given(_json_values())
    @settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    def check(junk):
        for doc in (
            junk,
            {**base, "spec": junk},
            {**base, "spec": {**base["spec"], "pipelines": [junk]}},
            {**base, "spec": {**base["spec"], "inputs": junk}},
        ):
            try:
                manifests.check(doc)
            except PipelineError as exc:
                assert exc.status == 400 and exc.message

    check()
