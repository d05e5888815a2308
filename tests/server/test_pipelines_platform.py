"""pai_lab's own operators as pipeline steps on a real `pai server`: a dataset registered from a step's
output, a two-rank TensorFlow job on Dask, the model it made registered and deployed, a labeling
export; what they made carries its lineage, and a step never does what its submitter may not."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from pai_lab.client.pipelines import PipelineRunError
from pai_lab.errors import BadInput, NotFound
from pai_lab.pipelines import (
    MetadataBuilder,
    Pipeline,
    PipelineArtifact,
    PipelineParameter,
    PipelineStep,
    ProviderAlibabaPAI,
    SavedOperator,
    component,
)
from tests.fixtures.serving import train_saved_models
from tests.fixtures.training import wait_for

TRAIN = textwrap.dedent("""
    import os
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pandas as pd, tensorflow as tf, tf_keras as keras
    import pai_lab.training as pai
    from pai_lab.training.reader import lines

    table = pd.read_csv(lines()[0]["data"]["source"])  # the dataset the pipeline registered
    x, y = table[["a", "b"]].to_numpy("float32"), table["y"].to_numpy("int64")
    keras.utils.set_random_seed(3)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = keras.Sequential([keras.layers.Dense(8, activation="relu", input_shape=(2,)),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    print(f"rows={len(table)} ranks={strategy.num_replicas_in_sync}", flush=True)
    pai.save_model(model)
""")

FAIL = "import sys\nprint('the rank gives up: no data', flush=True)\nsys.exit(4)\n"


@pytest.fixture
def ws(live_server, unique_name, monkeypatch):
    monkeypatch.setenv("PAI_LAB_URL", live_server.url)  # PipelineStep reads the registry as a notebook would
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    ws = live_server.client().create_workspace(unique_name("plp"))
    ws.members.add("dev", ["AlgorithmDeveloper"])
    ws.members.add("guest", ["Guest"])
    return ws


@component(outputs=[PipelineArtifact("table", MetadataBuilder.fs_dataset())])
def make_table(rows: int = 64, context=None):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    context.output_artifacts["table"].save_dataframe(pd.DataFrame({"a": a, "b": b, "y": (a + b > 0).astype(int)}))


def test_the_platform_operators_are_in_the_registry_beside_pais(ws):
    names = [op.identifier for op in SavedOperator.list(provider=ProviderAlibabaPAI)]
    assert names[-5:] == ["register_dataset", "dlc_tf_job", "register_model", "deploy_model", "export_labeling"]
    deploy = SavedOperator.get_by_identifier("deploy_model", ProviderAlibabaPAI, "v1")
    assert [i.name for i in deploy.inputs] == ["service", "processor", "instance", "model"]


@pytest.mark.tf
def test_a_pipeline_registers_data_trains_on_two_ranks_registers_and_deploys_with_lineage(ws, tmp_path, unique_name):
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(TRAIN)
    service = unique_name("svc").lower()
    made = make_table.as_step(name="make")
    registered = PipelineStep(
        "register_dataset",
        provider=ProviderAlibabaPAI,
        name="register-data",
        inputs={"inputArtifact": made.outputs["table"], "name": "points"},
    )
    job = PipelineStep(
        "dlc_tf_job",
        provider=ProviderAlibabaPAI,
        name="train",
        inputs={
            "data": registered.outputs["dataset"],
            "code_source": str(code),
            "command": "python /root/code/train.py",
            "workers": 2,
        },
    )
    model = PipelineStep(
        "register_model",
        provider=ProviderAlibabaPAI,
        name="register-model",
        inputs={"model": job.outputs["model"], "name": "points_model"},
    )
    deployed = PipelineStep(
        "deploy_model",
        provider=ProviderAlibabaPAI,
        name="deploy",
        inputs={"model": model.outputs["registeredModel"], "service": PipelineParameter("service")},
    )
    pipeline = Pipeline(
        steps=[deployed],
        outputs={"endpoint": deployed.outputs["endpoint"], "model": model.outputs["registeredModel"]},
    )
    run = ws.pipelines.run(pipeline, arguments={"service": service}, name="points-flow")
    run.wait_for_completion(show_outputs=False, timeout=600)
    assert [(n.name, n.status) for n in run.detail.nodes] == [
        ("make", "Succeeded"),
        ("register-data", "Succeeded"),
        ("train", "Succeeded"),
        ("register-model", "Succeeded"),
        ("deploy", "Succeeded"),
    ]
    job_id = run.detail.nodes[2].outputs["parameters"]["job_id"]
    ran = ws.jobs.get(job_id)
    assert ran.state == "Succeeded" and ran.workers == 2 and ran.created_by == "owner"
    assert any("rows=64 ranks=2" in line for line in run.get_logs("train", page_size=10000))

    # the dataset: a copy of the step's table where data lives, with the run in its lineage
    data = ws.datasets.get("points")
    assert data.latest_version == 1 and data.info.item_count == 1
    assert "/pipeline-outputs/" in data.info.source_uri and ".pai_lab" not in data.info.source_uri
    (record,) = data.lineage().records
    assert (record.run_id, record.step, record.version, record.operator) == (
        run.id,
        "register-data",
        "1",
        "pai/register_dataset@v1",
    )
    assert record.inputs["artifacts"]["inputArtifact"]["location"]["uri"].endswith(
        "/make/outputs/artifacts/table/files/data.csv"
    )

    # the model: the job's own version (made by the train step) and points_model:1 (made by register-model)
    trained_name, trained_version = ran.model.split(":")
    (by_job,) = ws.models.lineage(trained_name, int(trained_version)).records
    assert (by_job.step, by_job.inputs["parameters"]["command"]) == ("train", "python /root/code/train.py")
    registered_model = ws.models.get("points_model")
    assert registered_model.version == 1 and registered_model.path == ws.models.get(ran.model).path
    lineage = registered_model.lineage()
    assert [(r.run_id, r.step) for r in lineage] == [(run.id, "register-model")]
    html = lineage._repr_html_()
    assert f"/pipelines/runs/{run.id}'" in html and "register-model" in html and "points_model:1" in html
    assert f"model {trained_name}:{trained_version}" in html  # the input it was made from

    # the service: deployed as the submitter, its endpoint the step's output, answering predictions
    outputs = {o.name: o for o in run.get_outputs()}
    assert outputs["endpoint"].value.endswith(f"/api/predict/{service}")
    assert outputs["model"].value == {"location": {"model": "points_model", "version": "1"}}
    served = ws.services.get(service).wait("Running", timeout=180, progress=False)
    assert served.info.created_by == "owner"
    scores = served.predict(np.array([[2.0, 2.0], [-2.0, -2.0]], dtype="float32"))
    assert scores.shape == (2, 2)
    (svc_record,) = ws._get(f"/lineage/service/{service}")
    assert (svc_record["run_id"], svc_record["step"]) == (run.id, "deploy")
    ws.services.get(service).delete()


def test_a_failing_job_step_fails_the_run_with_the_jobs_reason_and_log_tail(ws, tmp_path):
    code = tmp_path / "failing"
    code.mkdir()
    (code / "fail.py").write_text(FAIL)
    job = PipelineStep(
        "dlc_tf_job",
        provider=ProviderAlibabaPAI,
        name="train",
        inputs={"code_source": str(code), "command": "python /root/code/fail.py", "workers": 2},
    )
    run = ws.pipelines.run(Pipeline(steps=[job]), name="doomed")
    with pytest.raises(PipelineRunError, match="failed"):
        run.wait_for_completion(show_outputs=False, timeout=300)
    assert run.detail.status == "Failed"
    reason = run.detail.reason
    assert reason.startswith("step 'train' failed: job dlc") and "Failed" in reason and "exited with code 4" in reason
    assert "the rank gives up: no data" in reason  # the job's log tail, in the step's


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("platform") / "model"
    train_saved_models((folder, 1))
    return folder


def _hand_on(saved: Path):
    @component(outputs=[PipelineArtifact("model", MetadataBuilder.local_model())])
    def copy_model(context=None):
        import shutil

        shutil.copytree(saved, context.output_artifacts["model"].local_dir, dirs_exist_ok=True)

    return copy_model


def test_a_step_never_does_what_its_submitter_may_not(ws, live_server, saved_model):
    dev = live_server.client("dev").workspace(ws.name)
    made = _hand_on(saved_model).as_step(name="make-model")
    deploy = PipelineStep(
        "deploy_model",
        provider=ProviderAlibabaPAI,
        name="deploy",
        inputs={"model": made.outputs["model"], "service": "prod_" + uuid.uuid4().hex[:8]},
    )
    run = dev.pipelines.run(Pipeline(steps=[deploy]), name="not-mine-to-deploy")
    with pytest.raises(PipelineRunError, match=r"service\.deploy"):
        run.wait_for_completion(show_outputs=False, timeout=180)
    reason = run.detail.reason
    assert reason.startswith("step 'deploy' failed: refused: 'dev' (AlgorithmDeveloper) may not service.deploy")
    assert "AlgorithmOps" in reason and "test services" in reason
    assert ws.services.list() == []
    # nothing half-made: the model the step registered first went with the refused transaction
    assert [m.name for m in ws.models.list()] == []

    # the step runs with the submitter's roles as they are when it runs: given AlgorithmOps, a retry deploys
    ws.members.set("dev", ["AlgorithmDeveloper", "AlgorithmOps"])
    run.retry()
    run.wait_for_completion(show_outputs=False, timeout=180)
    assert [(n.name, n.status) for n in run.detail.nodes] == [("make-model", "Succeeded"), ("deploy", "Succeeded")]
    (service,) = ws.services.list()
    assert service.created_by == "dev" and service.name.startswith("prod_")
    ws.services.get(service.name).delete()


def test_run_outputs_are_registered_and_deployed_from_the_run_panel(ws, live_server, saved_model, cli):
    copy_model = _hand_on(saved_model)
    first = copy_model.as_step(name="make-model")
    table = make_table.as_step(name="make-table")
    run = ws.pipelines.run(
        Pipeline(steps=[first, table], outputs={"model": first.outputs["model"], "table": table.outputs["table"]}),
        name="panel-outputs",
    )
    run.wait_for_completion(show_outputs=False, timeout=180)
    panel = run.monitor(refresh=0)
    rows = panel.output_actions.rows
    assert set(rows) == {"make-model/model", "make-table/table"}
    model_row, table_row = panel.output_actions.row("model"), panel.output_actions.row("table")
    assert set(model_row.buttons) == {"register", "deploy"} and set(table_row.buttons) == {"register_dataset"}

    model_row.name.value = "panel_model"
    model_row.buttons["register"].click()
    assert "model panel_model:1" in model_row.message.value
    assert [(r.run_id, r.step) for r in ws.models.get("panel_model").lineage()] == [(run.id, "make-model")]

    table_row.name.value = "panel_table"
    table_row.buttons["register_dataset"].click()
    assert "dataset panel_table:1" in table_row.message.value
    table_row.buttons["register_dataset"].click()  # the same output again: the dataset's next version
    assert "dataset panel_table:2" in table_row.message.value
    versions = [(r.version, r.step) for r in ws.datasets.get("panel_table").lineage()]
    assert versions == [("2", "make-table"), ("1", "make-table")]
    rc, out, err = cli("pipeline", "lineage", "dataset", "panel_table", "--version", "2", "-w", ws.name, "--json")
    assert rc == 0, err
    assert [(r["version"], r["run_id"], r["step"]) for r in json.loads(out)] == [("2", run.id, "make-table")]

    service = "svc_" + uuid.uuid4().hex[:8]
    model_row.service.value = service
    model_row.buttons["deploy"].click()
    assert f"service {service}" in model_row.message.value and f"/api/predict/{service}" in model_row.message.value
    (record,) = ws._get(f"/lineage/service/{service}")
    assert record["inputs"]["parameters"]["model"] == f"{service}:1"  # the folder, registered as the service
    ws.services.get(service).delete()

    # a Guest's click is refused by the server, and the panel says why
    guest_run = live_server.client("guest").workspace(ws.name).pipelines.get(run.id)
    guest_panel = guest_run.monitor(refresh=0)
    guest_row = guest_panel.output_actions.row("model")
    guest_row.name.value = "not_allowed"
    guest_row.buttons["register"].click()
    assert "may not model.register" in guest_row.message.value and "Guest" in guest_row.message.value
    assert "not_allowed" not in [m.name for m in ws.models.list()]


def test_a_labeling_export_step_writes_the_answers_as_an_artifact_and_needs_the_role(ws, live_server, unique_name):
    ws.datasets.register("texts", items=["good film", "bad film", "fine film"])
    task = ws.labeling.create_task(
        unique_name("reviews"), "text-classification", dataset="texts", labels=["pos", "neg"]
    )
    package = task.claim()
    for item in task.items(package):
        task.submit(item.seq, "pos" if "bad" not in item.data["source"] else "neg")
    task.submit_package(package)
    export = PipelineStep(
        "export_labeling", provider=ProviderAlibabaPAI, name="export", inputs={"task": task.name, "format": "itag"}
    )
    register = PipelineStep(
        "register_dataset",
        provider=ProviderAlibabaPAI,
        name="register",
        inputs={"inputArtifact": export.outputs["export"], "name": "labelled"},
    )
    run = ws.pipelines.run(Pipeline(steps=[register]), name="export-flow")
    run.wait_for_completion(show_outputs=False, timeout=180)
    assert run.detail.nodes[0].outputs["parameters"]["items"] == 3
    uri = run.detail.nodes[0].outputs["artifacts"]["export"]["location"]["uri"]
    lines = Path(uri[len("file://") :]).read_text().splitlines()
    assert len(lines) == 3 and all('"data"' in line for line in lines)
    assert ws.datasets.get("labelled").lineage()[0].step == "register"

    dev = live_server.client("dev").workspace(ws.name)
    refused = dev.pipelines.run(Pipeline(steps=[export]), name="dev-export")
    with pytest.raises(PipelineRunError, match=r"label\.manage"):
        refused.wait_for_completion(show_outputs=False, timeout=120)
    assert "'dev' (AlgorithmDeveloper) may not label.manage" in refused.detail.reason


def test_terminating_a_run_stops_the_job_its_step_started(ws, rank_script):
    job = PipelineStep(
        "dlc_tf_job",
        provider=ProviderAlibabaPAI,
        name="train",
        inputs={"command": f"python {rank_script} --mode=sleep", "workers": 2},
    )
    run = ws.pipelines.run(Pipeline(steps=[job]), name="stopped-midway")
    job_id = wait_for(lambda: next((j.id for j in ws.jobs.list()), None))  # the job the step submitted
    wait_for(lambda: ws.jobs.get(job_id).state == "Running", timeout=120)
    run.terminate()
    wait_for(lambda: run.refresh().status == "Terminated", timeout=120)
    assert run.detail.nodes[0].status == "Terminated"
    assert wait_for(lambda: ws.jobs.get(job_id).state in ("Stopped", "Failed"), timeout=60)
    assert ws.jobs.get(job_id).state == "Stopped"


def test_bad_requests_on_outputs_and_lineage_are_4xx_naming_the_field(ws, live_server):
    run = ws.pipelines.run(Pipeline(steps=[make_table.as_step(name="make")]), name="just-a-table")
    run.wait_for_completion(show_outputs=False, timeout=120)
    (table,) = run.get_outputs(name="table")
    with pytest.raises(BadInput, match="holds no SavedModel") as refused:
        table.register_model("not_a_model")
    assert refused.value.field == "output"
    with pytest.raises(NotFound) as missing:
        ws._post(f"/pipelines/runs/{run.id}/outputs/nothing/register", {"name": "x"})
    assert missing.value.field == "output"
    with pytest.raises(BadInput) as kind:
        ws._get("/lineage/job/anything")
    assert kind.value.field == "kind"
    with pytest.raises(BadInput) as name:
        ws._post(f"/pipelines/runs/{run.id}/outputs/table/register", {"name": "../x", "kind": "dataset"})
    assert name.value.field == "name"
    assert [d.name for d in ws.datasets.list()] == []
    assert len(ws.models.lineage("not_a_model")) == 0


def test_the_deploy_step_serves_a_pmml_model_with_the_pmml_processor(ws, tmp_path, unique_name):
    import pandas as pd

    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 2))
    table = tmp_path / "train.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] - 2 * x[:, 1] > 0).astype(int)}).to_csv(table, index=False)
    trained = PipelineStep(
        "logisticregression_binary",
        name="lr",
        provider=ProviderAlibabaPAI,
        version="v1",
        inputs={
            "inputTable": PipelineArtifact("inputTable", metadata=MetadataBuilder.fs_dataset(), required=True),
            "featureColNames": "a,b",
            "labelColName": "y",
            "goodValue": 1,
        },
    )
    service = unique_name("pmml_step").lower()
    deployed = PipelineStep(  # no processor given: the PMML file calls for pmml
        "deploy_model",
        provider=ProviderAlibabaPAI,
        name="deploy",
        inputs={"model": trained.outputs["PMMLOutput"], "service": service},
    )
    run = ws.pipelines.run(
        Pipeline(steps=[deployed]), arguments={"inputTable": str(table)}, wait=True, show_outputs=False, timeout=300
    )
    assert run.detail.status == "Succeeded", run.detail.reason
    svc = ws.services.get(service).wait(progress=False)
    try:
        assert svc.refresh().config["processor"] == "pmml"
        assert svc.predict({"a": 2.0, "b": -1.0})["predicted_y"] == "1"
        assert any("(pmml) as service" in line for line in run.get_logs("deploy"))
    finally:
        svc.delete()
