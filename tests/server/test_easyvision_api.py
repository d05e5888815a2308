"""EasyVision over REST and the `pai label` CLI: importing annotation CSVs of every shape,
converting a task (its tfrecord export) and a label_file to TFRecord, and the errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pai_lab.labeling.formats import easyvision_masks as masks

W = "/workspaces/default/labeling"
EXAMPLES = Path(__file__).parents[1] / "fixtures" / "golden" / "easyvision"


def local_examples(folder: Path) -> dict[str, str]:
    """The manual's example CSVs with their URLs pointing at images written in ``folder``."""
    for name in ("a", "b"):
        Image.new("RGB", (800, 800), (120, 120, 120)).save(folder / f"{name}.jpg")
    mask = np.zeros((800, 800), dtype=np.uint8)
    mask[10:60, 20:120] = 1
    (folder / "a.png").write_bytes(masks.encode(mask))
    urls = {
        "http://a.jpg": str(folder / "a.jpg"),
        "http://b.jpg": str(folder / "b.jpg"),
        "http://ossgw.alicdn.com/a.png": str(folder / "a.png"),
    }
    out = {}
    for path in EXAMPLES.glob("*.csv"):
        text = path.read_text(encoding="utf-8")
        for url, local in urls.items():
            text = text.replace(url, local)
        out[path.stem] = text
    return out


def parse_shards(files: list[str], model_type: str) -> dict[str, dict]:
    import tensorflow as tf

    from pai_lab.labeling.formats.tfrecord_types import features

    out = {}
    for record in tf.data.TFRecordDataset([f for f in files if f.endswith(".tfrecord")]):
        ex = tf.io.parse_single_example(record, features(model_type))
        ex = {k: tf.sparse.to_dense(v).numpy() if isinstance(v, tf.SparseTensor) else v.numpy() for k, v in ex.items()}
        out[ex["image/key"].decode()] = ex
    return out


async def test_every_shape_imports_over_rest_and_exports_back(api, members, tmp_path):
    await members()
    for shape, text in local_examples(tmp_path).items():
        body = {"format": "easyvision", "name": f"ev-{shape}", "content": text}
        if shape == "segmentation":
            body["labels"] = ["background", "cat"]
        status, task = await api("POST", f"{W}/imports", body, user="labeladmin")
        assert status == 201, (shape, task)
        assert task["labeled"] == task["total"] > 0
        options = {"shape": "segmentation"} if shape == "segmentation" else {}
        out = tmp_path / "out" / f"{shape}.csv"
        status, result = await api(
            "POST",
            f"{W}/tasks/{task['id']}/export",
            {"format": "easyvision", "to": str(out), "options": options},
            user="labeladmin",
        )
        assert status == 200, result
        got = [r for r in csv.reader(io.StringIO(out.read_text(encoding="utf-8"))) if not r[0].startswith("#")]
        want = [r for r in csv.reader(io.StringIO(text)) if not r[0].startswith("#")]
        if shape == "segmentation":
            written = json.loads(got[0][2])["ossUrl"]
            assert written in result["files"]
            assert (
                masks.decode(Path(written).read_bytes(), "m") == masks.decode((tmp_path / "a.png").read_bytes(), "m")
            ).all()
        else:
            assert [[json.loads(c) for c in r[1:]] for r in got] == [[json.loads(c) for c in r[1:]] for r in want]


async def test_imports_read_only_what_the_server_may_read(api, members, tmp_path):
    await members()
    text = local_examples(tmp_path)["segmentation"].replace(str(tmp_path / "a.png"), "/etc/passwd")
    status, err = await api(
        "POST", f"{W}/imports", {"format": "easyvision", "name": "x", "content": text}, user="labeladmin"
    )
    assert status == 400 and "/etc/passwd" in err["error"]["message"]
    status, err = await api(
        "POST",
        f"{W}/imports",
        {"format": "easyvision", "name": "x", "content": local_examples(tmp_path)["detection"]},
        user="dev",
    )
    assert status == 403


@pytest.mark.tf
async def test_task_converts_through_its_tfrecord_export(api, members, tmp_path):
    await members()
    texts = local_examples(tmp_path)
    status, task = await api(
        "POST",
        f"{W}/imports",
        {"format": "easyvision", "name": "ocr", "content": texts["text-end2end"]},
        user="labeladmin",
    )
    assert status == 201, task
    prefix = tmp_path / "tf" / "ocr"
    body = {
        "format": "tfrecord",
        "to": str(prefix),
        "options": {
            "model_type": "TEXT_END2END",
            "test_ratio": 0,
            "write_parallel_num": 8,
            "class_list": "类别2,类别1",
        },
    }
    status, result = await api("POST", f"{W}/tasks/ocr/export", body, user="labeladmin")
    assert status == 200, result
    assert any("write_parallel_num" in n for n in result["notes"])
    (ex,) = parse_shards(result["files"], "TEXT_END2END").values()
    assert ex["image/object/text"].tolist() == ["文本3".encode(), "文本4".encode()]
    assert ex["image/object/class/label"].tolist() == [1, 0]
    body["options"] = {"model_type": "TEXT_END2END", "class_list": "类别2"}
    body["overwrite"] = True
    status, err = await api("POST", f"{W}/tasks/ocr/export", body, user="labeladmin")
    assert status == 400 and err["error"]["field"] == "options.class_list" and "类别1" in err["error"]["message"]
    body["options"] = {"model_type": "TEXT_RECOGNITION"}  # the OCR template has no one-line text question
    status, err = await api("POST", f"{W}/tasks/ocr/export", body, user="labeladmin")
    assert status == 400 and err["error"]["field"] == "options.model_type" and "ocr" in err["error"]["message"]


@pytest.mark.tf
async def test_label_file_converts_over_rest(api, members, tmp_path):
    await members()
    (tmp_path / "seg.csv").write_text(local_examples(tmp_path)["segmentation"], encoding="utf-8")
    body = {
        "label_file": str(tmp_path / "seg.csv"),
        "output_tfrecord": str(tmp_path / "tf" / "seg"),
        "convert_param_config": "--model_type SEGMENTATION --test_ratio 0 --max_image_size 200",
        "cluster": '{"worker": {"count": 3}}',
    }
    status, result = await api("POST", f"{W}/convert", body, user="labeladmin")
    assert status == 200, result
    assert result["items"] == 1 and result["notes"][0].startswith("cluster")
    (ex,) = parse_shards(result["files"], "SEGMENTATION").values()
    ids = np.asarray(Image.open(io.BytesIO(ex["image/segmentation/class/encoded"])))
    assert ids.shape == (200, 200) and ids[5, 10] == 1 and ids[100, 100] == 0
    status, err = await api("POST", f"{W}/convert", body, user="labeladmin")
    assert status == 409 and err["error"]["field"] == "output_tfrecord"
    bad = {**body, "convert_param_config": "--model_type FACES", "overwrite": True}
    status, err = await api("POST", f"{W}/convert", bad, user="labeladmin")
    assert status == 400 and err["error"]["field"] == "options.model_type" and "FACES" in err["error"]["message"]
    status, err = await api("POST", f"{W}/convert", {**body, "label_file": "/etc/passwd"}, user="labeladmin")
    assert status == 400 and err["error"]["field"] == "label_file"
    status, err = await api("POST", f"{W}/convert", body, user="guest")
    assert status == 403


@pytest.mark.tf
def test_cli_imports_and_converts_as_the_manual_types_it(cli, unique_name, tmp_path):
    texts = local_examples(tmp_path)
    # the CSV names its images relative to its folder, as the converter's files do
    (tmp_path / "det.csv").write_text(texts["detection"].replace(f"{tmp_path}/", ""), encoding="utf-8")
    assert '""a.jpg""' in (tmp_path / "det.csv").read_text(encoding="utf-8")
    name = unique_name("evdet")
    rc, out, err = cli("label", "import", str(tmp_path / "det.csv"), "--format", "easyvision", "--name", name)
    assert rc == 0, err
    assert f"[Info] Labeling task [{name}] imported" in out and "2 items, 2 labeled" in out
    from pai_lab.client import PaiClient

    (first, _) = PaiClient().workspace("default").labeling.get(name).all_items()
    assert first.data == {"source": str(tmp_path / "b.jpg")}
    assert (first.label[0]["width"], first.label[0]["height"]) == (800, 800)  # read from the image
    (tmp_path / "classes.txt").write_text("类别1\n类别2\n", encoding="utf-8")
    rc, out, err = cli(
        "label",
        "convert",
        "-name",
        "easy_vision_ext",
        "-Dcmd=convert",
        f"-Dlabel_file={tmp_path / 'det.csv'}",
        f"-Dconvert_param_config=--class_list_file {tmp_path / 'classes.txt'} --max_image_size 600 "
        "--write_parallel_num 8 --num_samples_per_tfrecord 128 --test_ratio 0 --model_type DETECTION",
        f"-Doutput_tfrecord={tmp_path / 'out' / 'data_prefix'}",
        '-Dcluster={"worker": {"count": 1, "cpu": 800}}',
        "--json",
    )
    assert rc == 0, err
    result = json.loads(out[out.index("{") :])
    assert [n.split(":")[0] for n in result["notes"]] == ["cluster", "write_parallel_num"]
    examples = parse_shards(result["files"], "DETECTION")
    assert examples["2"]["image/object/class/label"].tolist() == [0, 1]
    assert int(examples["2"]["image/width"]) == 600
    rc, out, err = cli(
        "label",
        "convert",
        name,
        "-Dconvert_param_config=--model_type INSTANCE_SEGMENTATION --test_ratio 0",
        f"-Doutput_tfrecord={tmp_path / 'task' / 'data'}",
        "--json",
    )
    assert rc == 0, err
    result = json.loads(out[out.index("{") :])
    assert len(parse_shards(result["files"], "INSTANCE_SEGMENTATION")["1"]["image/object/mask"]) == 2
    rc, out, err = cli(
        "label",
        "convert",
        name,
        "-Dconvert_param_config=--model_type TEXT_RECOGNITION",
        f"-Doutput_tfrecord={tmp_path / 'x'}",
    )
    assert rc != 0 and "model_type" in err
    rc, out, err = cli(
        "label",
        "convert",
        name,
        "-Dconvert_param_config=--model_type DETECTION --write_parallel_num 2",
        f"-Doutput_tfrecord={tmp_path / 'y'}",
    )
    assert rc == 0 and "[Warn] write_parallel_num: shards are written one after another" in out
    rc, out, err = cli("label", "convert", "-Dlabel_file=x.csv")
    assert rc == 2 and "output_tfrecord" in err
    (tmp_path / "mine.py").write_text(
        "class Mine:\n    def __call__(self, key, url, answer, media):\n        return {'n': len(answer)}\n"
    )
    own = f"--model_type SELF_DEFINED --user_defined_converter_path {tmp_path / 'mine.py'} --converter_class Mine"
    argv = ["label", "convert", f"-Dlabel_file={tmp_path / 'det.csv'}", f"-Dconvert_param_config={own}"]
    rc, out, err = cli(*argv, f"-Doutput_tfrecord={tmp_path / 'own' / 'a'}")
    assert rc != 0 and "convert_here" in err  # the server runs no code of its users
    rc, out, err = cli(*argv, f"-Doutput_tfrecord={tmp_path / 'own' / 'b'}", "--here")
    assert rc == 0, err
    assert (tmp_path / "own" / "b_class_list.txt").exists()


@pytest.mark.s3
@pytest.mark.tf
async def test_label_file_on_s3_converts_to_s3(api, members, s3_bucket, tmp_path):
    import s3fs

    await members()
    bucket, options = s3_bucket
    fs = s3fs.S3FileSystem(**options)
    text = (EXAMPLES / "detection.csv").read_text(encoding="utf-8")
    fs.pipe(f"{bucket}/data/det.csv", text.replace("http://a.jpg", "a.jpg").replace("http://b.jpg", "b.jpg").encode())
    for name in ("a", "b"):
        out = io.BytesIO()
        Image.new("RGB", (800, 800), (90, 90, 90)).save(out, format="JPEG")
        fs.pipe(f"{bucket}/data/{name}.jpg", out.getvalue())
    fs.pipe(f"{bucket}/data/classes.txt", "类别2\n类别1\n".encode())
    body = {
        "label_file": f"s3://{bucket}/data/det.csv",
        "output_tfrecord": f"s3://{bucket}/tf/det",
        "convert_param_config": "--model_type DETECTION --class_list_file classes.txt --test_ratio 0",
        "storage_options": options,
    }
    status, result = await api("POST", f"{W}/convert", body, user="labeladmin")
    assert status == 200, result
    assert result["files"] == [f"s3://{bucket}/tf/det_train_00000.tfrecord", f"s3://{bucket}/tf/det_class_list.txt"]
    fs.get(f"{bucket}/tf/det_train_00000.tfrecord", str(tmp_path / "det.tfrecord"))
    examples = parse_shards([str(tmp_path / "det.tfrecord")], "DETECTION")
    assert examples["1"]["image/object/class/label"].tolist() == [1, 0]
    assert examples["2"]["image/object/bbox/xmax"] == pytest.approx([700.16 / 800, 218.03 / 800])
    assert fs.cat(f"{bucket}/tf/det_class_list.txt").decode() == "类别2\n类别1\n"
