"""The manual's heart-disease pipeline, with its imports changed, on PAI's built-in operators."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from pai_lab.errors import BadInput
from pai_lab.pipelines import (
    MetadataBuilder,
    Pipeline,
    PipelineArtifact,
    PipelineParameter,
    PipelineStep,
    ProviderAlibabaPAI,
    SavedOperator,
    gen_run_node_scoped_placeholder,
)
from pai_lab.pipelines.builtins import heart_disease_sample


def create_pipeline():
    # the manual's code (5.2.4.3), its OCR damage repaired; only the imports differ
    feature_cols = [
        "sex",
        "cp",
        "fbs",
        "restecg",
        "exang",
        "slop",
        "thal",
        "age",
        "trestbps",
        "chol",
        "thalach",
        "oldpeak",
        "ca",
    ]
    label_col = "ifhealth"
    full_cols = ",".join([*feature_cols, label_col])
    pmml_oss_bucket = PipelineParameter("pmml_oss_bucket")
    pmml_oss_rolearn = PipelineParameter("pmml_oss_rolearn")
    pmml_oss_path = PipelineParameter("pmml_oss_path")
    pmml_oss_endpoint = PipelineParameter("pmml_oss_endpoint")
    execution = PipelineParameter("execution", typ=dict)
    dataset_input = PipelineArtifact("inputTable", metadata=MetadataBuilder.maxc_table(), required=True)
    sql = (
        "select age, (case sex when 'male' then 1 else 0 end) as sex, (case cp when"
        " 'angina' then 0 when 'notang' then 1 else 2 end) as cp, trestbps, chol,"
        " (case fbs when 'true' then 1 else 0 end) as fbs, (case restecg when 'norm'"
        " then 0 when 'abn' then 1 else 2 end) as restecg, thalach, (case exang when"
        " 'true' then 1 else 0 end) as exang, oldpeak, (case slop when 'up' then 0 "
        "when 'flat' then 1 else 2 end) as slop, ca, (case thal when 'norm' then 0 "
        " when 'fix' then 1 else 2 end) as thal, (case status when 'sick' then 1 else "
        "0 end) as ifHealth from ${t1};"
    )
    sql_step = PipelineStep(
        "sql",
        name="sql-1",
        provider=ProviderAlibabaPAI,
        version="v1",
        inputs={
            "inputTable1": dataset_input,
            "execution": execution,
            "sql": sql,
            "outputTableName": gen_run_node_scoped_placeholder(suffix="outputTable"),
        },
    )
    type_transform_step = PipelineStep(
        "type_transform",
        name="type-transform-1",
        provider=ProviderAlibabaPAI,
        version="v1",
        inputs={
            "execution": execution,
            "inputTable": sql_step.outputs["outputTable"],
            "cols_to_double": full_cols,
            "outputTable": gen_run_node_scoped_placeholder(suffix="outputTable"),
        },
    )
    normalize_step = PipelineStep(
        "normalize_1",
        name="normalize-1",
        provider=ProviderAlibabaPAI,
        version="v1",
        inputs={
            "execution": execution,
            "inputTable": type_transform_step.outputs["outputTable"],
            "selectedColNames": full_cols,
            "lifecycle": 1,
            "outputTableName": gen_run_node_scoped_placeholder(suffix="outputTable"),
            "outputParaTableName": gen_run_node_scoped_placeholder(suffix="outputParaTable"),
        },
    )
    split_step = PipelineStep(
        identifier="split",
        name="split-1",
        provider=ProviderAlibabaPAI,
        version="v1",
        inputs={
            "inputTable": normalize_step.outputs["outputTable"],
            "execution": execution,
            "fraction": 0.8,
            "output1TableName": gen_run_node_scoped_placeholder(suffix="output1Table"),
            "output2TableName": gen_run_node_scoped_placeholder(suffix="output2Table"),
        },
    )
    model_name = "test_health_prediction_by_pipeline_%s" % (random.randint(0, 999999))
    lr_step = PipelineStep(
        identifier="logisticregression_binary",
        name="logisticregression-1",
        provider=ProviderAlibabaPAI,
        version="v1",
        inputs={
            "inputTable": split_step.outputs["output1Table"],
            "execution": execution,
            "generatePmml": True,
            "pmmlOssEndpoint": pmml_oss_endpoint,
            "pmmlOssBucket": pmml_oss_bucket,
            "pmmlOssPath": pmml_oss_path,
            "pmmlOverwrite": True,
            "roleArn": pmml_oss_rolearn,
            "regularizedLevel": 1.0,
            "regularizedType": "l2",
            "modelName": model_name,
            "goodValue": 1,
            "featureColNames": ",".join(feature_cols),
            "labelColName": label_col,
        },
    )
    offline_model_pred_step = PipelineStep(
        identifier="Prediction_1",
        name="offlinemodel-pred",
        provider=ProviderAlibabaPAI,
        version="v1",
        inputs={
            "model": lr_step.outputs["model"],
            "inputTable": split_step.outputs["output2Table"],
            "execution": execution,
            "outputTableName": gen_run_node_scoped_placeholder(suffix="outputTable"),
            "featureColNames": ",".join(feature_cols),
            "appendColNames": label_col,
        },
    )
    evaluate_step = PipelineStep(
        identifier="evaluate_1",
        name="evaluate-1",
        provider=ProviderAlibabaPAI,
        version="v1",
        inputs={
            "execution": execution,
            "inputTable": offline_model_pred_step.outputs["outputTable"],
            "outputDetailTableName": gen_run_node_scoped_placeholder(suffix="outputDetail"),
            "outputELDetailTableName": gen_run_node_scoped_placeholder(suffix="outputELDetail"),
            "outputMetricTableName": gen_run_node_scoped_placeholder(suffix="outputMetricDetail"),
            "scoreColName": "prediction_score",
            "labelColName": label_col,
        },
    )
    return Pipeline(
        steps=[evaluate_step, offline_model_pred_step],
        outputs={
            "pmmlModel": lr_step.outputs["PMMLOutput"],
            "evaluateResult": evaluate_step.outputs["outputMetricTable"],
        },
    )


def test_the_manual_heart_disease_pipeline_runs_on_the_built_in_operators(live_server, monkeypatch, tmp_path):
    monkeypatch.setenv("PAI_LAB_URL", live_server.url)  # the SDK finds the server as a notebook would
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    builtins = [op.identifier for op in SavedOperator.list(provider=ProviderAlibabaPAI)]
    assert builtins == [
        "split",
        "type_transform",
        "sql",
        "normalize_1",
        "logisticregression_binary",
        "Prediction_1",
        "evaluate_1",
        # pai_lab's own: steps that act on the platform (tests/server/test_pipelines_platform.py)
        "register_dataset",
        "dlc_tf_job",
        "register_model",
        "deploy_model",
        "export_labeling",
    ]
    table = heart_disease_sample(tmp_path / "heart_disease_prediction.csv")
    p = create_pipeline()
    assert len(p.steps) == 7 and len(p.inputs) == 6
    run_instance = p.run(
        job_name="test_heart_disease_pred",
        arguments={
            "execution": {"endpoint": "", "odpsProject": "local"},
            "pmml_oss_rolearn": "-",
            "pmml_oss_path": "-",
            "pmml_oss_bucket": "-",
            "pmml_oss_endpoint": "-",
            "inputTable": str(table),
        },
        wait=True,
        show_outputs=False,
        timeout=300,
    )
    assert run_instance.detail.status == "Succeeded", run_instance.detail.reason
    outputs = {o.name: o for o in run_instance.get_outputs()}
    assert set(outputs) == {"pmmlModel", "evaluateResult"}
    metrics = pd.read_csv(outputs["evaluateResult"].uri[len("file://") :])
    assert metrics.loc[0, "AUC"] > 0.75 and metrics.loc[0, "Total"] == 60  # the 20% split-1 held out
    pmml = Path(outputs["pmmlModel"].uri[len("file://") :]).read_text()
    assert "<RegressionModel" in pmml and 'name="oldpeak"' in pmml
    assert any(line.startswith("trained on 240 rows") for line in run_instance.get_logs("logisticregression-1"))


HEART_ARGUMENTS = {
    "execution": {"endpoint": "", "odpsProject": "local"},
    "pmml_oss_rolearn": "-",
    "pmml_oss_path": "-",
    "pmml_oss_bucket": "-",
    "pmml_oss_endpoint": "-",
}


def test_a_second_identical_heart_run_is_all_cache_hits_and_a_changed_argument_reruns_from_its_step(
    live_server, unique_name, tmp_path, monkeypatch
):
    monkeypatch.setenv("PAI_LAB_URL", live_server.url)  # the built-in steps are looked up on the server
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    ws = live_server.client().create_workspace(unique_name("heart"))  # no cache of other tests' runs
    table = heart_disease_sample(tmp_path / "heart_disease_prediction.csv")
    p = create_pipeline()  # one pipeline (its model name is drawn once), run three times
    arguments = {**HEART_ARGUMENTS, "inputTable": str(table)}

    def run(args):
        done = ws.pipelines.run(p, arguments=args, wait=True, show_outputs=False, timeout=300)
        assert done.detail.status == "Succeeded", done.detail.reason
        return done

    def state(done):
        return {n.name: (n.status, n.cached) for n in done.detail.nodes}

    first = run(arguments)
    assert set(state(first).values()) == {("Succeeded", False)}

    second = run(arguments)  # every step's outputNames are run-scoped placeholders, yet all hit
    assert set(state(second).values()) == {("Skipped", True)}
    assert all(first.id in n.reason for n in second.detail.nodes)
    first_out = {o.name: o.value for o in first.get_outputs()}
    assert {o.name: o.value for o in second.get_outputs()} == first_out
    assert {n.name: n.outputs for n in second.detail.nodes} == {n.name: n.outputs for n in first.detail.nodes}

    third = run({**arguments, "pmml_oss_path": "models/"})  # logistic regression's input only
    after = {"logisticregression-1", "offlinemodel-pred", "evaluate-1"}
    assert {n for n, s in state(third).items() if s == ("Succeeded", False)} == after
    assert {n for n, s in state(third).items() if s == ("Skipped", True)} == set(state(first)) - after
    assert {o.name: o.value for o in third.get_outputs()} != first_out


def test_the_sql_operator_runs_on_duckdb_over_two_tables_and_a_bad_query_fails_its_step(
    live_server, unique_name, tmp_path, monkeypatch
):
    monkeypatch.setenv("PAI_LAB_URL", live_server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    ws = live_server.client().create_workspace(unique_name("sql"))
    pd.DataFrame({"ID": [1, 2, 3], "Score": [0.5, 1.5, 2.5], "Sick": [True, False, True]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    pd.DataFrame({"id": [1, 3], "Name": ["ann", "cy"]}).to_csv(tmp_path / "b.csv", index=False)

    def sql_pipeline(query: str):
        step = PipelineStep(
            "sql",
            name="sql-1",
            provider=ProviderAlibabaPAI,
            version="v1",
            workspace=ws,
            inputs={
                "inputTable1": PipelineArtifact("a", MetadataBuilder.fs_dataset()),
                "inputTable2": PipelineArtifact("b", MetadataBuilder.fs_dataset()),
                "sql": query,
            },
        )
        return Pipeline(steps=[step], outputs={"out": step.outputs["outputTable"]})

    # EXCLUDE and a list aggregate are DuckDB's (SQLite has neither); names come back lower case
    query = (
        "select * exclude (Score), list(Name) over (partition by t1.ID) as Names "
        "from ${t1} t1 left join ${t2} t2 on t1.ID = t2.id where Sick = 'true' order by t1.ID;"
    )
    arguments = {"a": str(tmp_path / "a.csv"), "b": str(tmp_path / "b.csv")}
    run = ws.pipelines.run(sql_pipeline(query), arguments=arguments, wait=True, show_outputs=False, timeout=120)
    out = pd.read_csv(run.get_outputs()[0].uri[len("file://") :])
    assert list(out.columns) == ["id", "sick", "id_1", "name", "names"]
    assert out["id"].tolist() == [1, 3] and out["name"].tolist() == ["ann", "cy"]

    failed = ws.pipelines.run(sql_pipeline("select nothing from ${t1}"), arguments=arguments)
    with pytest.raises(Exception, match="sql-1"):
        failed.wait_for_completion(show_outputs=False, timeout=120)
    assert failed.detail.status == "Failed" and "nothing" in failed.detail.reason


def test_the_heart_runs_pmml_model_deploys_with_the_pmml_processor_chosen_from_its_format(
    live_server, unique_name, tmp_path, monkeypatch
):
    monkeypatch.setenv("PAI_LAB_URL", live_server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    ws = live_server.client().create_workspace(unique_name("heartsvc"))
    table = heart_disease_sample(tmp_path / "heart_disease_prediction.csv")
    run = ws.pipelines.run(
        create_pipeline(), arguments={**HEART_ARGUMENTS, "inputTable": str(table)}, wait=True, show_outputs=False
    )
    model = next(o for o in run.get_outputs() if o.name == "pmmlModel")
    made = model.deploy(unique_name("heart_lr"))  # no processor named: the PMML file calls for pmml
    svc = ws.services.get(made.name).wait(progress=False)
    try:
        assert svc.refresh().config["processor"] == "pmml"
        assert made.lineage.run_id == run.id and made.lineage.step == "logisticregression-1"
        assert made.lineage.inputs["parameters"]["processor"] == "pmml"
        served = made.lineage.inputs["parameters"]["model"]
        assert served.endswith("/model.pmml") and "/pipeline-outputs/" in served  # a copy, out of the state folder
        split = next(n for n in run.detail.nodes if n.name == "split-1")
        held_out = split.outputs["artifacts"]["output2Table"]["location"]["uri"][len("file://") :]
        rows = pd.read_csv(held_out).head(3).drop(columns=["ifhealth"]).to_dict("records")  # the model's inputs
        answers = svc.predict(rows)
        assert len(answers) == 3 and all(0.0 <= a["probability_1"] <= 1.0 for a in answers)
        assert {a["predicted_ifhealth"] for a in answers} <= {"1", "other"}
    finally:
        svc.delete()
    with pytest.raises(BadInput, match="no SavedModel"):  # a processor named that cannot serve the file: a 400
        model.deploy(unique_name("heart_ev"), processor="easyvision")

    from pai_lab.widgets.pipeline_outputs import OutputActions

    panel = OutputActions()  # the run panel's outputs: its Deploy button on the PMML model
    panel.show(run, run.detail)
    row = panel.rows["logisticregression-1/pmmlModel"]
    row.service.value = unique_name("heart_panel")  # type: ignore[union-attr]
    row.buttons["deploy"].click()
    assert f"service {row.service.value}" in row.message.value, row.message.value  # type: ignore[union-attr]
    by_panel = ws.services.get(row.service.value)  # type: ignore[union-attr]
    try:
        assert by_panel.refresh().config["processor"] == "pmml"
    finally:
        by_panel.delete()
