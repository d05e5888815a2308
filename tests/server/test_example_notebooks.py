"""The example notebooks run top to bottom, as a new user runs them, against a real control plane,
real Dask and real TensorFlow; then what they built is checked from outside, as a user would check it."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from pai_lab.datasets.readers import class_label
from tests.conftest import start_pai_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One `pai server` for the notebooks (its start and its Dask cluster's are paid once), whose root
    holds a copy of examples/; the kernel finds it through the environment, as a kernel started by
    JupyterLab finds its server. The notebooks name their datasets, tasks and services apart."""
    root = tmp_path_factory.mktemp("notebooks") / "root"
    server = start_pai_server(root)
    shutil.copytree(EXAMPLES, root / "examples")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAI_LAB_URL", server.url)
        patch.setenv("PAI_LAB_TOKEN", server.token)
        yield server, root / "examples"
    server.stop()


@pytest.fixture
def notebook_server(shared_server):
    """The shared server; the services a notebook deployed are deleted after its test, so the next
    notebook starts beside no other model's instances."""
    yield shared_server
    ws = shared_server[0].client().workspace("default")
    for service in ws.services.list():
        ws.services.get(service.name).delete()


def new_since(listed: list, before: set) -> list:
    """What the notebook made: the listed objects whose id was not there before it ran."""
    return [obj for obj in listed if obj.id not in before]


def run_notebook(folder: Path, name: str) -> nbformat.NotebookNode:
    book = nbformat.read(folder / name, as_version=4)
    try:
        NotebookClient(
            book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
    finally:
        nbformat.write(book, folder / name)  # kept with its outputs, to read after a failure
    return book


def images_shown(book) -> int:
    return sum("image/png" in out.get("data", {}) for cell in book.cells for out in cell.get("outputs", []))


@pytest.mark.tf
def test_digits_loop_labels_trains_serves_and_prelabels(notebook_server):
    server, folder = notebook_server
    book = run_notebook(folder, "01-digits-loop.ipynb")
    assert images_shown(book) >= 1  # the accuracy curve

    ws = server.client().workspace("default")
    task = ws.labeling.get("digits-labels")
    assert task.stats().labeled == 150  # three packages of 50
    # every item still to label carries a scored suggestion from the served model
    unlabeled = [i for i in task.all_items(0, 200) if i.label is None]
    assert unlabeled and all(i.prelabel for i in unlabeled)

    # the served model, judged on digits it never saw, by the sample's own labels
    lines = list(ws.datasets.get("digits").manifest())
    random.Random(0).shuffle(lines)
    test = lines[:300]
    images = [Path(line["data"]["source"]).read_bytes() for line in test]
    predicted = ws.services.get("digits").predict({"image_bytes": images})["label"]
    accuracy = sum(p == class_label(line) for p, line in zip(predicted, test)) / len(test)
    assert accuracy > 0.6, accuracy  # chance is 0.1


@pytest.mark.tf
def test_reviews_loop_trains_on_text_labels(notebook_server):
    server, folder = notebook_server
    run_notebook(folder, "02-reviews-loop.ipynb")

    ws = server.client().workspace("default")
    assert ws.labeling.get("reviews-labels").stats().labeled == 100
    lines = list(ws.datasets.get("reviews").manifest())
    texts = [line["data"]["source"] for line in lines]
    predicted = ws.services.get("reviews").predict({"text": texts})["label"]
    accuracy = sum(p == class_label(line) for p, line in zip(predicted, lines)) / len(lines)
    assert accuracy > 0.8, accuracy  # chance is 0.5


@pytest.mark.tf
def test_shapes_boxes_come_back_as_prelabels(notebook_server):
    server, folder = notebook_server
    book = run_notebook(folder, "03-shapes-boxes.ipynb")
    assert images_shown(book) >= 1  # the sheet of pictures with suggested boxes

    ws = server.client().workspace("default")
    task = ws.labeling.get("shapes-boxes")
    assert task.stats().labeled == 40
    suggested = [i for i in task.all_items(0, 60) if i.label is None and i.prelabel]
    assert suggested
    # the suggestions are boxes on the picture, with the task's labels
    shapes = [shape for item in suggested for shape in item.prelabel[0]["data"]]
    assert shapes and {next(iter(s["labels"].values())) for s in shapes} <= {"square", "circle"}
    for item in suggested:
        for shape in item.prelabel[0]["data"]:
            assert all(-1 <= x <= 65 and -1 <= y <= 65 for x, y in shape["value"])


def test_heart_pipeline_runs_the_manuals_dag_and_shows_its_run(notebook_server):
    server, folder = notebook_server
    ws = server.client().workspace("default")
    before = {run.id for run in ws.pipelines.list()}
    book = run_notebook(folder, "04-heart-pipeline.ipynb")
    # display(run) showed the live run panel, with the static picture beside it for viewers without widgets
    shown = [
        out.get("data", {})
        for cell in book.cells
        if cell.cell_type == "code" and "display(run)" in cell.source
        for out in cell.outputs
    ]
    widget = "application/vnd.jupyter.widget-view+json"
    assert any(widget in data and "pai-lab-pipeline-run" in data.get("text/html", "") for data in shown), shown

    [listed] = new_since(ws.pipelines.list(), before)
    assert listed.name == "heart_disease_pred" and listed.status == "Succeeded"
    run = ws.pipelines.get(listed.id)
    assert [n.name for n in run.detail.nodes] == [
        "sql-1",
        "type-transform-1",
        "normalize-1",
        "split-1",
        "logisticregression-1",
        "offlinemodel-pred",
        "evaluate-1",
    ]
    outputs = {o.name: o for o in run.get_outputs()}
    metrics = pd.read_csv(outputs["evaluateResult"].uri.removeprefix("file://"))
    assert metrics.loc[0, "Total"] == 60 and metrics.loc[0, "AUC"] > 0.75  # the 20% held out, well above chance
    assert "<RegressionModel" in Path(outputs["pmmlModel"].uri.removeprefix("file://")).read_text()
    assert any(line.startswith("trained on 240 rows") for line in run.get_logs("logisticregression-1"))


@pytest.mark.tf
def test_deepfm_ctr_trains_on_two_ranks_and_beats_chance(notebook_server):
    server, folder = notebook_server
    ws = server.client().workspace("default")
    before = {job.id for job in ws.jobs.list()}
    book = run_notebook(folder, "05-deepfm-ctr.ipynb")
    assert images_shown(book) >= 1  # the log-loss and AUC curves

    [job] = new_since(ws.jobs.list(), before)
    job = ws.jobs.get(job.id)
    assert job.state == "Succeeded" and job.workers == 2 and job.spec.tables[0].endswith("avazu-ctr-train")
    points = job.metrics()
    final = points.dropna(subset=["test_auc"]).iloc[-1]
    assert final["test_auc"] > 0.7, final  # chance is 0.5; the planted pattern allows about 0.87
    first, last = points.dropna(subset=["loss"])["loss"].iloc[[0, -1]]
    assert last < first  # training log-loss falls


@pytest.mark.tf
def test_cifar_images_train_on_two_ranks_deploy_and_classify(notebook_server):
    import io
    import pickle

    from PIL import Image

    server, folder = notebook_server
    ws = server.client().workspace("default")
    before = {job.id for job in ws.jobs.list()}
    book = run_notebook(folder, "06-cifar-images.ipynb")
    assert images_shown(book) >= 3  # the sample sheet, the accuracy curve, the classified picture
    assert any("This is a" in str(cell.get("source", "")) for cell in book.cells)

    [job] = new_since(ws.jobs.list(), before)
    job = ws.jobs.get(job.id)
    assert job.state == "Succeeded" and job.workers == 2 and job.model
    assert any(p.name.startswith("model.ckpt") for p in (folder / "data" / "check_point").iterdir())
    # the service, judged on the test batch the notebook wrote in CIFAR's format
    with open(folder / "data" / "cifar-10-batches-py" / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    with open(folder / "data" / "cifar-10-batches-py" / "batches.meta", "rb") as f:
        names = [n.decode() for n in pickle.load(f, encoding="bytes")[b"label_names"]]
    pixels = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)[:100]
    encoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    predicted = ws.services.get("cifar").predict({"image_bytes": encoded})["label"]
    accuracy = sum(p == names[k] for p, k in zip(predicted, batch[b"labels"][:100])) / 100
    assert accuracy > 0.6, accuracy  # chance is 0.1
