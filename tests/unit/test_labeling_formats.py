"""Exports and imports: iTAG byte for byte (the seed's own examples), golden files for every
template x format, the files checked by the tools their users load them with, round trips."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import pytest

from pai_lab.errors import BadInput
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv
from pai_lab.labeling import transfer
from pai_lab.labeling.formats.labelstudio import config as ls_config
from pai_lab.labeling.templates import TemplateSpec
from tests.fixtures.labeling import CUSTOM_SPEC, GOLDEN, SAMPLES, TEMPLATES, create_sample_task, label_all

FILE_FORMATS = {
    "itag": "manifest",
    "easyvision": "csv",
    "label-studio": "label-studio.json",
    "coco": "coco.json",
    "conll": "conll",
}
UPDATE = os.environ.get("PAI_LAB_UPDATE_GOLDEN") == "1"


def export_text(platform, task: str, fmt: str) -> str:
    with platform.store.transaction() as s:
        _, chunks = transfer.stream(s, platform.store.engine, "owner", "default", task, fmt)
    return "".join(chunks)


def import_text(platform, text: str, fmt: str, name: str, **kw) -> sc.Task:
    with platform.store.transaction() as s:
        return transfer.import_task(s, "owner", "default", sc.ImportRequest(format=fmt, name=name, content=text, **kw))


def items_of(platform, task: str) -> list[sc.TaskItem]:
    with platform.store.transaction() as s:
        return sv.list_items(s, "owner", "default", task, 0, 1000)


# ---------------------------------------------------------------- iTAG, byte for byte


SEED = sorted(p.stem for p in (GOLDEN / "seed").glob("*.manifest"))


@pytest.mark.parametrize("name", SEED)
def test_seed_examples_come_back_byte_for_byte(label_platform, name):
    """Each result example of the iTAG manual, imported and exported again, is the same bytes."""
    raw = (GOLDEN / "seed" / f"{name}.manifest").read_bytes()
    template = None
    if name == "custom":
        with label_platform.store.transaction() as s:
            sv.create_template(s, "owner", "default", CUSTOM_SPEC)
        template = "seed-custom"
    task = import_text(label_platform, raw.decode(), "itag", f"seed-{name}", template=template)
    assert task.template == (template or name)
    assert f'"label-{task.id}"' in raw.decode()  # the task kept the example's id
    assert task.labeled == task.total == 1
    assert export_text(label_platform, task.id, "itag").encode("utf-8") == raw


def test_itag_writes_whole_numbers_as_integers_and_keeps_data_key_order(label_platform):
    with label_platform.store.transaction() as s:
        task = sv.create_task(
            s,
            "owner",
            "default",
            sc.TaskCreate(
                name="ints",
                template="object-detection",
                labels=["a"],
                lines=[{"data": {"zeta": 1, "source": "x.jpg", "alpha": "é"}}],
            ),
        )
        pkg = sv.claim(s, "owner", "default", task.id)
        sv.submit_answer(
            s,
            "owner",
            "default",
            task.id,
            sc.AnswerSubmit(
                item=0,
                results=[
                    {
                        "type": "image",
                        "height": 100.0,
                        "questionId": "1",
                        "markTitle": "x",
                        "width": 200.0,
                        "rotation": 0,
                        "data": [
                            {
                                "labels": {"单选": "a"},
                                "value": [[1.0, 2.0], [3.5, 2.0], [3.5, 4.0], [1.0, 4.0]],
                                "type": "image/polygon",
                                "id": "s1",
                            }
                        ],
                    }
                ],
            ),
        )
        sv.submit_package(s, "owner", "default", task.id, pkg.number)
    line = export_text(label_platform, task.id, "itag")
    assert line == (
        '{"data":{"zeta":1,"source":"x.jpg","alpha":"é"},"label-' + task.id + '":{"results":[{"questionId":'
        '"1","data":[{"id":"s1","type":"image/polygon","value":[[1,2],[3.5,2],[3.5,4],[1,4]],"labels":'
        '{"单选":"a"}}],"rotation":0,"markTitle":"目标检测标签配置","width":200,"type":"image","height":100}'
        "]}}\n"
    )
    assert len(task.id) == 19 and task.id.isdigit()


# ---------------------------------------------------------------- golden files, every template x format


def _golden(template: str, fmt: str) -> Path:
    return GOLDEN / template / f"export.{FILE_FORMATS[fmt]}"


@pytest.mark.parametrize("template", TEMPLATES)
def test_golden_exports_for_every_format(labeled, label_platform, template):
    task = labeled(template)
    for fmt in FILE_FORMATS:
        path = _golden(template, fmt)
        try:
            text = export_text(label_platform, task, fmt)
        except BadInput as exc:
            assert exc.field == "format" and template in str(exc), exc
            assert not path.exists(), f"{fmt} refused for {template} but a golden file exists"
            continue
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"no golden {path.name} for {template}; run with PAI_LAB_UPDATE_GOLDEN=1 and review"
        assert text == path.read_text(encoding="utf-8"), f"{template} {fmt} differs from {path}"


def test_every_template_has_itag_and_label_studio_goldens():
    for template in TEMPLATES:
        assert (GOLDEN / template / "export.manifest").exists()
        assert (GOLDEN / template / "export.label-studio.json").exists()
    assert (GOLDEN / "object-detection" / "export.csv").exists()
    assert (GOLDEN / "ner" / "export.conll").exists()


# ---------------------------------------------------------------- checked by the tools users load them with


def _expected_boxes(template: str) -> list[tuple[int, str, list]]:
    out = []
    for seq, answer in enumerate(SAMPLES[template]["answers"]):
        for shape in answer["shapes"]:
            pts = shape.get("points") or [
                [shape["box"][0], shape["box"][1]],
                [shape["box"][2], shape["box"][1]],
                [shape["box"][2], shape["box"][3]],
                [shape["box"][0], shape["box"][3]],
            ]
            out.append((seq + 1, shape.get("label"), pts))
    return out


@pytest.mark.parametrize("template", ["object-detection", "ocr"])
def test_coco_export_loads_in_pycocotools(labeled, label_platform, tmp_path, template):
    from pycocotools.coco import COCO

    task = labeled(template)
    path = tmp_path / "coco.json"
    path.write_text(export_text(label_platform, task, "coco"), encoding="utf-8")
    coco = COCO(str(path))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert list(names.values()) == SAMPLES[template]["options"]["labels"]
    expected = _expected_boxes(template)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == len(expected)
    for ann, (image_id, label, pts) in zip(anns, expected):
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        assert ann["image_id"] == image_id
        assert names.get(ann["category_id"]) == label
        assert ann["bbox"] == pytest.approx([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
        assert coco.annToMask(ann).sum() > 0  # the polygon rasterizes inside the image
    for img in coco.loadImgs(coco.getImgIds()):
        assert img["width"] > 0 and img["height"] > 0


def test_yolo_export_has_the_layout_ultralytics_reads(labeled, label_platform, tmp_path):
    import yaml
    from PIL import Image

    images = tmp_path / "img"
    images.mkdir()
    lines = []
    for i, (w, h) in enumerate([(640, 480), (320, 240)]):
        Image.new("RGB", (w, h), (i * 60, 100, 150)).save(images / f"pets{i + 1}.jpg")
        lines.append({"data": {"source": str(images / f"pets{i + 1}.jpg")}})
    SAMPLES["yolo-check"] = {**SAMPLES["object-detection"], "lines": lines}
    try:
        with label_platform.store.transaction() as s:
            task = sv.create_task(
                s,
                "owner",
                "default",
                sc.TaskCreate(
                    name="yolo", template="object-detection", lines=lines, **SAMPLES["object-detection"]["options"]
                ),
            )
        label_all(label_platform.store, task.id, "yolo-check")
    finally:
        del SAMPLES["yolo-check"]
    out = tmp_path / "yolo"
    result = transfer.export_to(
        label_platform.store,
        "owner",
        "default",
        task.id,
        sc.ExportRequest(format="yolo", to=str(out), options={"val_ratio": 0}),
    )
    assert result.files == [str(out / "data.yaml")]
    doc = yaml.safe_load((out / "data.yaml").read_text())
    assert doc["names"] == {0: "cat", 1: "dog"} and doc["train"] == "images/train"
    assert Path(doc["path"]) == out
    for i, (w, h) in enumerate([(640, 480), (320, 240)]):
        stem = f"pets{i + 1}"
        assert Image.open(out / "images" / "train" / f"{stem}.jpg").size == (w, h)
        rows = [r.split() for r in (out / "labels" / "train" / f"{stem}.txt").read_text().splitlines()]
        expected = [e for e in _expected_boxes("object-detection") if e[0] == i + 1]
        assert len(rows) == len(expected)
        for row, (_, label, pts) in zip(rows, expected):
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            cls, cx, cy, bw, bh = int(row[0]), *map(float, row[1:])
            assert cls == ["cat", "dog"].index(label)
            assert (cx, cy, bw, bh) == pytest.approx(
                (
                    (min(xs) + max(xs)) / 2 / w,
                    (min(ys) + max(ys)) / 2 / h,
                    (max(xs) - min(xs)) / w,
                    (max(ys) - min(ys)) / h,
                ),
                abs=1e-6,
            )
            assert all(0 <= v <= 1 for v in (cx, cy, bw, bh))


def test_conll_export_reads_in_conllu_and_seqeval(labeled, label_platform):
    import conllu
    from seqeval.metrics.sequence_labeling import get_entities

    task = labeled("ner")
    text = export_text(label_platform, task, "conll")
    sentences = conllu.parse(text, fields=["form", "ner"])
    assert len(sentences) == len(SAMPLES["ner"]["lines"])
    for sentence, line, spans in zip(sentences, SAMPLES["ner"]["lines"], SAMPLES["ner"]["answers"]):
        source = line["data"]["source"]
        forms = [t["form"] for t in sentence]
        tags = [t["ner"] for t in sentence]
        found = get_entities(tags)
        # each entity's tokens, joined back, are the labelled span of the source text
        pieces = []
        for label, a, b in found:
            joined = forms[a : b + 1]
            pieces.append((label, joined))
        assert [p[0] for p in pieces] == [s["label"] for s in spans]
        for (_label, joined), span in zip(pieces, spans):
            assert "".join(joined).replace(" ", "") == source[span["start"] : span["end"] + 1].replace(" ", "")


def test_label_studio_export_converts_with_label_studios_converter(labeled, label_platform, tmp_path):
    from label_studio_converter import Converter  # Label Studio's own converter (the test extra installs it)

    task = labeled("object-detection")
    path = tmp_path / "ls.json"
    path.write_text(export_text(label_platform, task, "label-studio"), encoding="utf-8")
    with label_platform.store.transaction() as s:
        info = sv.get_task(s, "owner", "default", task)
    conf = ls_config(TemplateSpec.model_validate(info.spec), [lab.name for lab in info.labels])
    converter = Converter(conf, str(tmp_path), download_resources=False)
    converter.convert_to_coco(str(path), str(tmp_path / "coco"), is_dir=False)
    doc = json.loads((tmp_path / "coco" / "result.json").read_text())
    # Label Studio's COCO converter keeps rectangles (and polygons) with their pixel boxes
    boxes = sorted(tuple(round(v, 4) for v in a["bbox"]) for a in doc["annotations"])
    expected = sorted(
        tuple(
            round(v, 4)
            for v in (
                min(p[0] for p in pts),
                min(p[1] for p in pts),
                max(p[0] for p in pts) - min(p[0] for p in pts),
                max(p[1] for p in pts) - min(p[1] for p in pts),
            )
        )
        for _, _, pts in _expected_boxes("object-detection")
    )
    assert boxes == expected
    assert {c["name"] for c in doc["categories"]} == {"cat", "dog"}


def test_easyvision_csv_has_the_documented_columns(labeled, label_platform):
    task = labeled("object-detection")
    text = export_text(label_platform, task, "easyvision")
    assert text.startswith("#数据ID,原始数据,融合答案\n")
    rows = list(csv.reader(io.StringIO(text.split("\n", 1)[1])))
    assert [r[0] for r in rows] == ["1", "2"]
    assert json.loads(rows[0][1]) == {"url": "img/pets1.jpg"}
    objects = json.loads(rows[0][2])
    assert json.loads(objects[0]["text"]) == {"class*": "cat"}
    assert objects[0]["coord"] == ["10.00", "20.00", "210.50", "20.00", "210.50", "220.25", "10.00", "220.25"]
    assert all(isinstance(c, str) for c in objects[1]["coord"]) and len(objects[1]["coord"]) == 8


# ---------------------------------------------------------------- round trips: import(export(x)) == x


def _answers(platform, task: str) -> list[tuple]:
    return [(i.data, i.label, i.check, i.verify, i.skipped) for i in items_of(platform, task)]


@pytest.mark.parametrize("template", TEMPLATES)
def test_itag_round_trip_keeps_every_stage(label_platform, template):
    flow = "label-check-accept"
    with label_platform.store.transaction() as s:
        task = create_sample_task(s, template, flow=flow, task_id=None)
    store = label_platform.store
    label_all(store, task.id, template)
    for stage in ("check", "accept"):
        while True:
            with store.transaction() as s:
                pkg = sv.claim(s, "owner", "default", task.id, stage)
                if pkg is None:
                    break
                sv.review(s, "owner", "default", task.id, pkg.number, "pass")
    text = export_text(label_platform, task.id, "itag")
    assert f'"label-{task.id}-check"' in text and f'"label-{task.id}-verify"' in text
    with store.transaction() as s:
        sv.delete_task(s, "owner", "default", task.id)
    back = import_text(label_platform, text, "itag", f"{template}-back", template=template)
    assert back.id == task.id and back.flow == flow and back.state == "Completed"
    assert back.accepted == back.total
    assert export_text(label_platform, back.id, "itag") == text


def _same(a, b) -> bool:
    """Equal, numbers within a float's last bit (Label Studio keeps geometry in percent)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=4e-16, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("template", TEMPLATES)
def test_label_studio_round_trip(labeled, label_platform, template):
    task = labeled(template)
    before = _answers(label_platform, task)
    text = export_text(label_platform, task, "label-studio")
    back = import_text(
        label_platform,
        text,
        "label-studio",
        f"{template}-ls",
        template=template,
        multi=SAMPLES[template]["options"].get("multi", False),
    )
    assert back.labeled == back.total == len(before)
    after = _answers(label_platform, back.id)
    assert _same(after, before), (after, before)


@pytest.mark.parametrize("template", ["object-detection", "ocr"])
def test_coco_round_trip(labeled, label_platform, template):
    task = labeled(template)
    before = _answers(label_platform, task)
    back = import_text(label_platform, export_text(label_platform, task, "coco"), "coco", f"{template}-coco")
    assert back.template == template
    assert [lab.name for lab in back.labels] == SAMPLES[template]["options"]["labels"]
    assert _answers(label_platform, back.id) == before


def test_prelabels_export_as_label_studio_predictions_and_come_back_as_suggestions(label_platform):
    with label_platform.store.transaction() as s:
        task = create_sample_task(s, "image-classification", task_id=None)
        sv.attach_prelabels(
            s,
            "owner",
            "default",
            task.id,
            sc.PrelabelBatch(
                source="model:resnet", items=[sc.Prelabel(item=0, answer="dog"), sc.Prelabel(item=1, answer="dog")]
            ),
        )
    text = export_text(label_platform, task.id, "label-studio")
    doc = json.loads(text)
    assert doc[0]["annotations"] == []
    assert doc[0]["predictions"][0]["model_version"] == "model:resnet"
    assert doc[0]["predictions"][0]["result"][0]["value"] == {"choices": ["dog"]}
    back = import_text(label_platform, text, "label-studio", "from-ls", template="image-classification")
    assert back.labeled == 0  # suggestions are not answers
    assert [i.prelabel[0]["data"] for i in items_of(label_platform, back.id)] == ["dog", "dog"]


# ---------------------------------------------------------------- malformed imports


def test_malformed_import_names_the_line_and_stores_nothing(label_platform):
    good = (GOLDEN / "seed" / "ocr.manifest").read_text().strip()
    cases = {
        "not json": (good + '\n{"data": \n', "line 2"),
        "no data": (good + "\n" + '{"source": "x"}', "line 2"),
        "bad shape": (good + "\n" + good.replace('"type":"image/polygon"', '"type":"rect"'), "line 2"),
        "two tasks": (good + "\n" + good.replace("label-1448636992236760000", "label-1448636992236769999"), "line 2"),
    }
    for name, (text, where) in cases.items():
        with pytest.raises(BadInput) as err:
            import_text(label_platform, text, "itag", f"bad-{name.replace(' ', '-')}")
        assert where in err.value.message, (name, err.value.message)
    with label_platform.store.transaction() as s:
        assert sv.list_tasks(s, "owner", "default") == []


@pytest.mark.parametrize(
    "fmt,text,needle",
    [
        ("coco", '{"images": [], "annotations": 3}', "images, annotations"),
        (
            "coco",
            '{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "bbox": [0, 0, 1, 1], '
            '"category_id": 9}], "categories": []}',
            "category_id 9",
        ),
        ("label-studio", "[1, 2]", "task 1"),
    ],
)
def test_malformed_coco_and_label_studio_files_are_refused(label_platform, fmt, text, needle):
    with pytest.raises(BadInput) as err:
        import_text(label_platform, text, fmt, "bad", template="object-detection")
    assert needle in err.value.message


# ---------------------------------------------------------------- TFRecord


@pytest.mark.tf
def test_tfrecord_shards_read_back_with_tf_data(label_platform, tmp_path):
    import tensorflow as tf
    from PIL import Image

    from pai_lab.labeling.formats.tfrecord import features

    lines = []
    for i in range(5):
        path = tmp_path / f"im{i}.png"
        Image.new("RGB", (64 + i, 48), (i * 40, 0, 0)).save(path)
        lines.append({"data": {"source": str(path)}})
    with label_platform.store.transaction() as s:
        task = sv.create_task(
            s,
            "owner",
            "default",
            sc.TaskCreate(name="tf", template="object-detection", labels=["cat", "dog"], lines=lines),
        )
        pkg = sv.claim(s, "owner", "default", task.id)
        for i in range(5):
            sv.submit_answer(
                s,
                "owner",
                "default",
                task.id,
                sc.AnswerSubmit(
                    item=i,
                    answer={
                        "width": 64 + i,
                        "height": 48,
                        "shapes": [{"box": [8, 12, 32, 36], "label": ["cat", "dog"][i % 2]}],
                    },
                ),
            )
        sv.submit_package(s, "owner", "default", task.id, pkg.number)
    prefix = tmp_path / "out" / "data"
    result = transfer.export_to(
        label_platform.store,
        "owner",
        "default",
        task.id,
        sc.ExportRequest(
            format="tfrecord", to=str(prefix), options={"test_ratio": 0.4, "num_samples_per_tfrecord": 2, "seed": 3}
        ),
    )
    shards = [f for f in result.files if f.endswith(".tfrecord")]
    assert all(Path(f).name.startswith(("data_train_", "data_test_")) for f in shards)
    assert (tmp_path / "out" / "data_class_list.txt").read_text() == "cat\ndog\n"
    ds = tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, features("DETECTION")))
    seen = []
    for ex in ds:
        key = int(ex["image/key"].numpy()) - 1  # the CSV's 数据ID: the item's position from 1
        image = tf.io.decode_image(ex["image/encoded"]).numpy()
        assert image.shape == (48, 64 + key, 3)
        assert int(ex["image/width"]) == 64 + key
        xmin = tf.sparse.to_dense(ex["image/object/bbox/xmin"]).numpy()
        assert xmin == pytest.approx([8 / (64 + key)])
        assert tf.sparse.to_dense(ex["image/object/class/label"]).numpy().tolist() == [key % 2]
        seen.append(key)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert max(len(list(tf.data.TFRecordDataset([f]))) for f in shards) <= 2
