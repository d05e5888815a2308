"""Pre-labels that pay, through the Python client, REST and the CLI against a real `pai server`:
a served classifier's suggestions keep their scores, the next package holds the least confident
items, accepted suggestions are counted, and tasks, statistics and exports show well."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import pytest

from tests.fixtures.serving import png_bytes

W = "/workspaces/default/labeling"
# colours between the pure ones: the further from pure, the less sure the model
SHADES = [
    (230, 20, 20),
    (20, 230, 20),
    (20, 20, 230),
    (150, 110, 60),
    (60, 150, 110),
    (110, 60, 150),
    (130, 120, 90),
    (90, 130, 120),
    (120, 90, 130),
    (200, 60, 40),
    (40, 200, 60),
    (60, 40, 200),
]


# Two tiny models of contract C2 built with TensorFlow in a process of their own: a detector
# (PNG bytes in; a sure box and an unsure one out, the sure box's class read from the image's
# colour) and a text classifier (texts in; "pos" when the text says "good"), with its class list.
MODELS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf

    class Boxes(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, image_bytes):
            def one(data):
                image = tf.cast(tf.io.decode_png(data, channels=3), tf.float32)
                red = tf.reduce_mean(image[..., 0]) > tf.reduce_mean(image[..., 1])
                return tf.stack([tf.where(red, 0.0, 1.0), 1.0])

            classes = tf.map_fn(one, image_bytes, fn_output_signature=tf.float32)
            n = tf.shape(image_bytes)[0]
            boxes = tf.tile(tf.constant([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]]]), [n, 1, 1])
            scores = tf.tile(tf.constant([[0.9, 0.3]]), [n, 1])
            return {"detection_boxes": boxes, "detection_scores": scores, "detection_classes": classes}

    class Texts(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            good = tf.strings.regex_full_match(tf.strings.lower(text), ".*good.*")
            pos = tf.where(good, 0.8, 0.35)
            return {"probabilities": tf.stack([1.0 - pos, pos], axis=1)}

    boxes, texts = Boxes(), Texts()
    tf.saved_model.save(boxes, sys.argv[1], signatures={"serving_default": boxes.serve})
    tf.saved_model.save(texts, sys.argv[2], signatures={"serving_default": texts.serve})
    with open(os.path.join(sys.argv[2], "class_names.json"), "w") as f:
        json.dump(["neg", "pos"], f)
""")


@pytest.fixture(scope="module")
def c2_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("c2")
    subprocess.run(
        [sys.executable, "-c", MODELS_SCRIPT, str(folder / "boxes"), str(folder / "texts")],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    return folder / "boxes", folder / "texts"


@pytest.fixture
def ws(live_server):
    return live_server.client().workspace("default")


def _serve(ws, model, prefix: str):
    return ws.services.create(
        {
            "name": f"{prefix}_{uuid.uuid4().hex[:8]}",
            "model_path": str(model),
            "processor": "tensorflow_cpu_2.7",
            "metadata": {"instance": 1},
        }
    )


def test_a_served_classifier_prelabels_with_scores_and_the_least_confident_come_first(
    live_server, ws, colour_model, unique_name
):
    folder = live_server.root / unique_name("shades")
    folder.mkdir()
    for i, rgb in enumerate(SHADES):
        (folder / f"{i}.png").write_bytes(png_bytes(rgb, (24, 16)))
    task = ws.labeling.create_task(
        unique_name("shades"),
        "image-classification",
        labels=["red", "green", "blue"],
        package_size=4,
        lines=[{"data": {"source": f"{folder.name}/{i}.png"}} for i in range(len(SHADES))],
    )
    svc = _serve(ws, colour_model, "colours")
    try:
        assert task.prelabel_from_service(svc.name, batch=5, progress=False) == len(SHADES)
    finally:
        svc.delete()
    items = task.all_items()
    for item, rgb in zip(items, SHADES):
        scores = item.prelabel_scores
        assert set(scores) == {"red", "green", "blue"} and sum(scores.values()) == pytest.approx(1, abs=1e-4)
        top = max(scores, key=scores.get)
        assert top == ["red", "green", "blue"][max(range(3), key=rgb.__getitem__)]  # what the model sees
        assert item.prelabel[0]["data"] == top and item.prelabel_score == pytest.approx(scores[top], abs=1e-5)
        assert item.prelabel_source == f"service:{svc.name}" and item.label is None

    done = task.order("least_confidence")
    assert (done.packages, done.items, done.scored) == (3, 12, 12)
    least_sure = sorted(items, key=lambda i: (i.prelabel_score, i.seq))[:4]
    pkg = task.claim()
    first = task.items(pkg)
    assert {i.seq for i in first} == {i.seq for i in least_sure}

    # three suggestions accepted as they were, one corrected
    for item in first[:3]:
        task.submit(item.seq, item.prelabel[0]["data"])
    other = next(c for c in ("red", "green", "blue") if c != first[3].prelabel[0]["data"])
    task.submit(first[3].seq, other)
    task.submit_package(pkg)
    stats = task.stats()
    assert (stats.suggested, stats.suggestions_accepted, stats.suggestions_changed) == (12, 3, 1)
    exported = json.loads(task.export("label-studio", progress=False))
    origins = {t["id"] - 1: t["annotations"][0]["result"][0]["origin"] for t in exported if t["annotations"]}
    assert sorted(origins.values()) == ["prediction", "prediction", "prediction", "prediction-changed"]


def test_a_served_detector_prelabels_boxes_in_pixels_and_a_text_classifier_labels_texts(
    live_server, ws, c2_models, unique_name
):
    boxes_model, texts_model = c2_models
    folder = live_server.root / unique_name("boxes")
    folder.mkdir()
    sizes = [(200, 100), (64, 48), (90, 120)]
    colours = [(220, 30, 30), (30, 220, 30), (200, 40, 40)]
    for i, (size, rgb) in enumerate(zip(sizes, colours)):
        (folder / f"{i}.png").write_bytes(png_bytes(rgb, size))
    boxes = ws.labeling.create_task(
        unique_name("boxes"),
        "object-detection",
        labels=["red", "other"],
        lines=[{"data": {"source": f"{folder.name}/{i}.png"}} for i in range(3)],
    )
    texts = ws.labeling.create_task(
        unique_name("texts"),
        "text-classification",
        labels=["neg", "pos"],
        lines=[{"data": {"source": s}} for s in ["a good day", "rain", "GOOD food"]],
    )
    pkg = texts.claim()
    texts.submit(1, "neg")  # answered already: not sent to the model
    detector, classifier = _serve(ws, boxes_model, "boxes"), _serve(ws, texts_model, "texts")
    try:
        assert boxes.prelabel_from_service(detector.name, batch=2, progress=False) == 3
        assert texts.prelabel_from_service(classifier.name, progress=False) == 2
    finally:
        detector.delete()
        classifier.delete()
    for item, (width, height), rgb in zip(boxes.all_items(), sizes, colours):
        [answer] = item.prelabel
        assert (answer["width"], answer["height"]) == (width, height)
        [shape] = answer["data"]  # the box scoring 0.3 is left out
        x1, y1, x2, y2 = (round(v, 2) for v in (0.2 * width, 0.1 * height, 0.6 * width, 0.5 * height))
        assert shape["value"] == [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]  # in pixels, to 2 decimals
        assert shape["labels"] == {"单选": "red" if rgb[0] > rgb[1] else "other"}
        assert item.prelabel_score == pytest.approx(0.9)
    suggested = {i.seq: (i.prelabel[0]["data"] if i.prelabel else None, i.prelabel_scores) for i in texts.all_items()}
    assert suggested[0][0] == "pos" and suggested[0][1] == pytest.approx({"neg": 0.2, "pos": 0.8})
    assert suggested[1] == (None, None)
    assert suggested[2][0] == "pos"
    texts.release(pkg)


def test_items_on_s3_are_read_for_the_model_as_the_labeler_reads_them(ws, colour_model, s3_bucket, unique_name):
    import boto3

    bucket, options = s3_bucket
    client = boto3.client(
        "s3",
        endpoint_url=options["client_kwargs"]["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
    )
    for i, rgb in enumerate(SHADES[:3]):
        client.put_object(Bucket=bucket, Key=f"shades/{i}.png", Body=png_bytes(rgb, (20, 12)))
    name = unique_name("s3shades")
    ws.datasets.register(name, f"s3://{bucket}/shades/", scan=True, storage_options=options, progress=False)
    task = ws.labeling.create_task(name, "image-classification", dataset=name, labels=["red", "green", "blue"])
    svc = _serve(ws, colour_model, "s3colours")
    try:
        assert task.prelabel_from_service(svc.name, progress=False) == 3
    finally:
        svc.delete()
    by_source = {i.data["source"].rsplit("/", 1)[-1]: i.prelabel[0]["data"] for i in task.all_items()}
    assert by_source == {"0.png": "red", "1.png": "green", "2.png": "blue"}


def test_task_and_statistics_show_as_html_with_strings_escaped(ws, unique_name, tmp_path, capsys):
    task = ws.labeling.create_task(
        unique_name("html"),
        "text-classification",
        labels=["<b>spam</b>", "ham"],
        description="<script>alert(1)</script>",
        package_size=2,
        lines=[{"data": {"source": f"text {i}"}} for i in range(3)],
    )
    task.prelabel(predictions={0: {"answer": "<b>spam</b>", "score": 0.9}, 1: "ham"}, progress=False)
    pkg = task.claim()
    task.submit(0, "<b>spam</b>")
    task.submit(1, "<b>spam</b>")
    task.submit_package(pkg)
    shown = task._repr_html_()
    assert "&lt;script&gt;" in shown and "<script>" not in shown
    assert "&lt;b&gt;spam&lt;/b&gt;" in shown and "<b>spam</b>" not in shown
    assert "2/3" in shown  # the labeled bar
    stats = task.stats()
    html = stats._repr_html_()
    assert "<table>" in html and "TaskStats(" not in html and "labeled" in html
    assert "1/2" in html  # one of the two suggestions kept as it was
    assert (stats.suggestions_accepted, stats.suggestions_changed) == (1, 1)

    capsys.readouterr()
    task.export("itag", tmp_path / "quiet.manifest", progress=False)
    assert capsys.readouterr().err == ""
    task.export("itag", tmp_path / "shown.manifest")
    assert "export" in capsys.readouterr().err  # the progress bar
    assert (tmp_path / "quiet.manifest").read_bytes() == (tmp_path / "shown.manifest").read_bytes()


def test_order_from_the_cli_and_a_bad_order_is_refused_naming_by(cli, ws, unique_name):
    name = unique_name("cliorder")
    task = ws.labeling.create_task(
        name,
        "text-classification",
        labels=["a", "b"],
        package_size=2,
        lines=[{"data": {"source": f"t{i}"}} for i in range(4)],
    )
    task.prelabel(
        predictions={i: {"answer": "a", "score": s} for i, s in enumerate([0.9, 0.95, 0.55, 0.6])}, progress=False
    )
    rc, out, err = cli("label", "order", name, "--by", "margin")
    assert rc == 0 and "4 items" in out, err
    assert {i.seq for i in task.items(1)} == {2, 3}
    rc, out, err = cli("label", "order", name, "--by", "doubt")
    assert rc == 2 and "unknown order 'doubt'" in err


async def test_order_over_rest_repacks_and_refuses_an_unknown_order_naming_by(api, members):
    await members()
    lines = [{"data": {"source": f"t{i}"}} for i in range(4)]
    status, task = await api(
        "POST",
        f"{W}/tasks",
        {"name": "ordered", "template": "text-classification", "labels": ["a", "b"], "lines": lines, "package_size": 2},
    )
    assert status == 201, task
    status, _ = await api(
        "POST",
        f"{W}/tasks/ordered/prelabels",
        {
            "source": "m",
            "items": [
                {"item": i, "answer": "a", "scores": {"a": p, "b": 1 - p}} for i, p in enumerate([0.9, 0.8, 0.5, 0.6])
            ],
        },
    )
    assert status == 200
    status, done = await api("POST", f"{W}/tasks/ordered/order", {"by": "entropy"})
    assert status == 200 and done == {"by": "entropy", "packages": 2, "items": 4, "scored": 4}
    status, items = await api("GET", f"{W}/tasks/ordered/packages/1/items")
    assert {i["seq"] for i in items} == {2, 3}
    assert items[0]["prelabel_scores"] in ({"a": 0.5, "b": 0.5}, {"a": 0.6, "b": 0.4})
    status, err = await api("POST", f"{W}/tasks/ordered/order", {"by": "doubt"})
    assert status == 400 and err["error"]["field"] == "by" and "least_confidence" in err["error"]["message"]
    status, err = await api("POST", f"{W}/tasks/ordered/order", {"by": "margin"}, user="dev")
    assert status == 403  # ordering a task is its admins' call, like distributing it
