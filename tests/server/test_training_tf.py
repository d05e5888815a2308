"""Real TensorFlow, real Dask, 2 MultiWorkerMirroredStrategy ranks: jobs train on a labeling task's answers and
on a dataset in the loopback S3 server; the saved models beat chance by a wide margin on held-out items."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "training"
DIGITS = [str(i) for i in range(10)]

pytestmark = pytest.mark.tf


def _truth(dataset) -> dict[str, str]:
    """source -> class, read straight from the sample's iTAG manifest (not through pai_lab's readers)."""
    truth = {}
    for line in dataset.manifest():
        answer = next(v for k, v in line.items() if k.startswith("label-"))
        truth[line["data"]["source"]] = str(answer["results"][0]["data"])
    return truth


def _accuracy(model_dir: Path, truth: dict[str, str], sources: list[str]) -> float:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    names = json.loads((model_dir / "class_names.json").read_text())
    images = tf.constant([Path(s).read_bytes() for s in sources])
    probabilities = serve(image_bytes=images)["probabilities"].numpy()
    assert probabilities.shape == (len(sources), len(names))
    return sum(names[p.argmax()] == truth[s] for p, s in zip(probabilities, sources)) / len(sources)


def _check_job(job, epochs: int) -> None:
    assert job.state == "Succeeded", job.reason + "\n" + job.logs(0)[-3000:]
    chief = f"{job.id}-worker-0"
    log = job.logs(0)
    # TensorFlow's C++ start-up lines stay out of the job's logs
    assert not re.search(r"cuInit|oneDNN|To enable the following instructions", log)
    # Epoch-end points come from the chief only (MWMS metrics are already reduced over the ranks), count
    # epochs from 1, carry validation, and say what Keras printed for the epoch.
    frame = job.metrics()
    assert set(frame["pod"]) == {chief}
    ends = frame[frame["epoch"].notna()].sort_values("epoch")
    assert list(ends["epoch"]) == list(range(1, epochs + 1))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(frame.columns)
    printed = [float(v) for v in re.findall(r" - loss: ([\d.]+) - accuracy", log)]
    assert len(printed) == epochs
    assert [round(v, 4) for v in ends["loss"]] == pytest.approx(printed, abs=1e-4)
    assert (ends["loss"] > 0).all() and (ends["accuracy"] > 0).all()  # no zeros from an exhausted dataset


def test_a_two_rank_job_trains_on_a_labeling_tasks_answers(live_server, unique_name):
    ws = live_server.client().workspace("default")
    name = unique_name("digits")
    dataset = ws.datasets.register(name, "sample://digits")
    truth = _truth(dataset)
    task = ws.labeling.create_task(unique_name("labels"), "image-classification", dataset=name, labels=DIGITS)
    answered = []
    while len(answered) < 150:
        package = task.claim()
        for item in task.items(package):
            task.submit(item.seq, truth[item.data["source"]])
            answered.append(item.data["source"])
        task.submit_package(package)

    job = ws.jobs.submit(
        name="digits-on-labels",
        workers=2,
        code_source=str(EXAMPLES),
        data_sources=[f"task:{task.name}"],
        command="python /root/code/digits_classifier.py --epochs=30",
    )
    job.wait(timeout=240, poll=0.5)
    _check_job(job, 30)
    model = Path(ws.models.get(job.id).path)
    assert json.loads((model / "class_names.json").read_text()) == DIGITS  # the task's label order
    held_out = sorted(set(truth) - set(answered))[::4]
    assert len(held_out) > 300
    assert _accuracy(model, truth, held_out) > 0.7  # chance is 0.1


@pytest.mark.s3
def test_a_two_rank_job_trains_on_a_dataset_in_s3(live_server, unique_name, s3_bucket):
    import boto3

    bucket, options = s3_bucket
    ws = live_server.client().workspace("default")
    sample = ws.datasets.register(unique_name("digits"), "sample://digits")
    truth = _truth(sample)
    sources = sorted(truth)
    train, held_out = sources[::9], [s for i, s in enumerate(sources) if i % 9][::4]
    s3 = boto3.client(
        "s3",
        endpoint_url=options["client_kwargs"]["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
    )
    for source in train:  # one folder per class, the usual layout
        s3.put_object(Bucket=bucket, Key=f"digits/{truth[source]}/{Path(source).name}", Body=Path(source).read_bytes())
    name = unique_name("s3digits")
    ws.datasets.register(name, f"s3://{bucket}/digits/", scan=True, glob="*.png", storage_options=options)

    job = ws.jobs.submit(
        name="digits-from-s3",
        workers=2,
        code_source=str(EXAMPLES),
        data_sources=[name],
        command="python /root/code/digits_classifier.py --epochs=30",
    )
    job.wait(timeout=240, poll=0.5)
    _check_job(job, 30)
    model = Path(ws.models.get(job.id).path)
    assert json.loads((model / "class_names.json").read_text()) == DIGITS  # sorted folder names
    assert _accuracy(model, truth, held_out) > 0.7


def test_the_text_and_box_examples_train_on_two_ranks_and_serve_their_signatures(live_server, unique_name):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    ws = live_server.client().workspace("default")
    reviews, shapes = unique_name("reviews"), unique_name("shapes")
    ws.datasets.register(reviews, "sample://reviews")
    boxes = ws.datasets.register(shapes, "sample://shapes")
    text_job = ws.jobs.submit(
        name="reviews",
        workers=2,
        code_source=str(EXAMPLES),
        data_sources=[reviews],
        command="python /root/code/reviews_classifier.py --epochs=10",
    )
    box_job = ws.jobs.submit(
        name="shapes",
        workers=2,
        code_source=str(EXAMPLES),
        data_sources=[shapes],
        command="python /root/code/shapes_detector.py --epochs=5",
    )
    for job in (text_job, box_job):
        job.wait(timeout=240, poll=0.5)
        assert job.state == "Succeeded", job.reason + "\n" + job.logs(0)[-3000:]

    text_model = Path(ws.models.get(text_job.id).path)
    assert json.loads((text_model / "class_names.json").read_text()) == ["negative", "positive"]
    serve = tf.saved_model.load(str(text_model)).signatures["serving_default"]
    out = serve(text=tf.constant(["The lamp is superb, five stars.", "The kettle is awful, returned it."]))
    assert out["probabilities"].numpy().argmax(axis=1).tolist() == [1, 0]

    box_model = Path(ws.models.get(box_job.id).path)
    assert json.loads((box_model / "class_names.json").read_text()) == ["circle", "square"]
    serve = tf.saved_model.load(str(box_model)).signatures["serving_default"]
    image = Path(next(boxes.manifest())["data"]["source"]).read_bytes()
    out = {k: v.numpy() for k, v in serve(image_bytes=tf.constant([image, image])).items()}
    assert out["detection_boxes"].shape == (2, 3, 4) and out["detection_scores"].shape == (2, 3)
    assert out["detection_classes"].shape == (2, 3) and set(out["detection_classes"].ravel()) <= {0, 1}
    assert ((out["detection_boxes"] >= 0) & (out["detection_boxes"] <= 1)).all()


def _variables(model_dir: Path) -> dict:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir))
    return {v.name: v.numpy() for v in loaded.variables if "Adam" not in v.name}


def test_two_ranks_train_the_same_weights_as_one_with_the_same_global_batch(live_server, unique_name):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    ws = live_server.client().workspace("default")
    sample = ws.datasets.register(unique_name("digits"), "sample://digits")
    # 142 items: every 10th is held out, leaving 128 to train on, four global batches of 32 that repeat whole
    name = unique_name("digits142")
    ws.datasets.register(name, items=[line for _, line in zip(range(142), sample.manifest())])
    command = "python /root/code/digits_classifier.py --epochs=3 --shuffle=0 --global_batch=32"
    two = ws.jobs.submit(name="same", command=command, workers=2, code_source=str(EXAMPLES), data_sources=[name])
    two.wait(timeout=240, poll=0.5)
    one = ws.jobs.submit(name="same", command=command, workers=1, code_source=str(EXAMPLES), data_sources=[name])
    one.wait(timeout=240, poll=0.5)
    assert (two.state, one.state) == ("Succeeded", "Succeeded"), two.reason + one.reason
    assert "128 training and 14 validation items" in one.logs(0)

    a, b = _variables(Path(two.output_dir) / "model"), _variables(Path(one.output_dir) / "model")
    assert a.keys() == b.keys() and len(a) >= 6
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, rtol=0, err_msg=key)
