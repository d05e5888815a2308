"""EasyVision annotation CSV: the manual's example rows of every shape import into a task and
export back the same, and a labeled task's export imports back to the same answers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pai_lab.errors import BadInput
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv
from pai_lab.labeling import transfer
from pai_lab.labeling.formats import easyvision_masks as masks
from tests.fixtures.labeling import GOLDEN

EXAMPLES = Path(__file__).parents[1] / "fixtures" / "golden" / "easyvision"
SHAPES = {
    "classification": "image-classification",
    "multi-label": "image-classification",
    "detection": "object-detection",
    "segmentation": "object-detection",
    "text-recognition": "text-recognition",
    "text-detection": "ocr",
    "text-end2end": "ocr",
}


def example_images(folder: Path) -> dict[str, str]:
    """The manual's image URLs mapped to local images (800 x 800, bigger than every box)."""
    out = {}
    for name in ("a", "b"):
        path = folder / f"{name}.jpg"
        Image.new("RGB", (800, 800), (200, 200, 200)).save(path)
        out[f"http://{name}.jpg"] = str(path)
    mask = np.zeros((800, 800), dtype=np.uint8)
    mask[10:60, 20:120] = 1
    mask[300:420, 500:700] = 2
    (folder / "a.png").write_bytes(masks.encode(mask))
    out["http://ossgw.alicdn.com/a.png"] = str(folder / "a.png")
    return out


def localized(shape: str, urls: dict[str, str]) -> str:
    text = (EXAMPLES / f"{shape}.csv").read_text(encoding="utf-8")
    for url, path in urls.items():
        text = text.replace(url, path)
    return text


def rows(text: str) -> list[tuple]:
    return [
        (r[0], json.loads(r[1]), json.loads(r[2])) for r in csv.reader(io.StringIO(text)) if not r[0].startswith("#")
    ]


def import_csv(platform, text: str, name: str, **kw) -> sc.Task:
    with platform.store.transaction() as s:
        return transfer.import_task(
            s, "owner", "default", sc.ImportRequest(format="easyvision", name=name, content=text, **kw)
        )


def export_csv(platform, task: str, tmp_path: Path, **options) -> str:
    out = tmp_path / f"{task}.csv"
    transfer.export_to(
        platform.store, "owner", "default", task, sc.ExportRequest(format="easyvision", to=str(out), options=options)
    )
    return out.read_text(encoding="utf-8")


def answers(platform, task: str) -> list:
    with platform.store.transaction() as s:
        items = sv.list_items(s, "owner", "default", task, 0, 1000)
    return [(i.data, i.label) for i in items]


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "segmentation"])
def test_manual_examples_import_and_export_the_same(label_platform, tmp_path, shape):
    text = localized(shape, example_images(tmp_path))
    task = import_csv(label_platform, text, f"ev-{shape}")
    assert task.template == SHAPES[shape]
    assert task.labeled == task.total == len(rows(text))
    again = export_csv(label_platform, task.id, tmp_path)
    assert again.startswith("#数据ID,原始数据,融合答案\n")
    assert rows(again) == rows(text)


def test_detection_import_keeps_the_images_size_and_the_classes(label_platform, tmp_path):
    task = import_csv(label_platform, localized("detection", example_images(tmp_path)), "ev-det")
    assert [lab.name for lab in task.labels] == ["类别1", "类别2"]
    (_, label), _ = answers(label_platform, task.id)
    assert (label[0]["width"], label[0]["height"]) == (800, 800)
    assert label[0]["data"][0]["value"][0] == [306.73, 517.59]
    assert label[0]["data"][1]["labels"] == {"单选": "类别2"}


def test_segmentation_masks_import_as_polygons_and_export_as_the_same_masks(label_platform, tmp_path):
    urls = example_images(tmp_path)
    text = localized("segmentation", urls)
    task = import_csv(label_platform, text, "ev-seg", labels=["background", "cat", "dog"])
    ((_, label),) = answers(label_platform, task.id)
    shapes = [(s["value"], s["labels"]["单选"]) for s in label[0]["data"]]
    assert shapes == [
        ([[20, 10], [120, 10], [120, 60], [20, 60]], "cat"),
        ([[500, 300], [700, 300], [700, 420], [500, 420]], "dog"),
    ]
    out = tmp_path / "out" / "seg.csv"
    result = transfer.export_to(
        label_platform.store,
        "owner",
        "default",
        task.id,
        sc.ExportRequest(format="easyvision", to=str(out), options={"shape": "segmentation"}),
    )
    assert (tmp_path / "out" / "seg_class_list.txt").read_text() == "background\ncat\ndog\n"
    ((_, raw, answer),) = rows(out.read_text(encoding="utf-8"))
    assert raw == {"url": urls["http://a.jpg"]}
    written = Path(answer["ossUrl"])
    assert written.parent == tmp_path / "out" / "seg_masks" and str(written) in result.files
    got = np.asarray(Image.open(written))
    assert got.shape == (800, 800, 3)
    want = masks.decode(Path(urls["http://ossgw.alicdn.com/a.png"]).read_bytes(), "mask")
    assert (got[..., 2] == want).all()


def test_a_segmentation_task_streams_as_detection_polygons(label_platform, tmp_path):
    text = localized("segmentation", example_images(tmp_path))
    task = import_csv(label_platform, text, "ev-seg2", labels=["background", "cat", "dog"])
    with label_platform.store.transaction() as s:
        _, chunks = transfer.stream(s, label_platform.store.engine, "owner", "default", task.id, "easyvision")
        ((_, _, answer),) = rows("".join(chunks))
    assert [json.loads(o["text"]) for o in answer] == [{"class*": "cat"}, {"class*": "dog"}]
    assert answer[0]["coord"] == ["20.00", "10.00", "120.00", "10.00", "120.00", "60.00", "20.00", "60.00"]


def _without_ids(label: list) -> list:
    """Shapes without their ids, vertices to the CSV's two decimals."""

    def shape(s: dict) -> dict:
        return dict({k: v for k, v in s.items() if k != "id"}, value=[[round(c, 2) for c in p] for p in s["value"]])

    return [dict(el, data=[shape(s) for s in el["data"]]) if el.get("type") == "image" else el for el in label]


@pytest.mark.parametrize("template", ["image-classification", "object-detection", "ocr"])
def test_labeled_task_exports_and_imports_back_to_the_same_answers(labeled, label_platform, tmp_path, template):
    task = labeled(template)
    text = export_csv(label_platform, task, tmp_path)
    back = import_csv(label_platform, text, f"{template}-back", template=template)
    before = [(d, _without_ids(label)) for d, label in answers(label_platform, task) if label]
    after = answers(label_platform, back.id)
    assert len(before) == len(after) == back.labeled
    for (d1, l1), (d2, l2) in zip(before, after):
        assert d2 == {"source": d1["source"]}
        # the sample images are not on disk: an import takes the boxes' extent as the image's size
        assert [{k: v for k, v in el.items() if k not in ("width", "height")} for el in l1] == [
            {k: v for k, v in el.items() if k not in ("width", "height")} for el in _without_ids(l2)
        ]
    assert export_csv(label_platform, back.id, tmp_path / "again") == text


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('1,"{""url"":""a.jpg""}"\n', "3 columns"),
        ('1,"{""uri"":""a.jpg""}","{""option"":""x""}"\n', '{"url"'),
        ('1,"{""url"":""a.jpg""}","{""nothing"":1}"\n', "none of the EasyVision answer shapes"),
        ('1,"{""url"":""a.jpg""}","{""option"":""x""}"\n2,"{""url"":""b.jpg""}","{""text"":""x""}"\n', "line 3"),
        ('1,"{""url"":""a.jpg""}","[{""text"":""{}"",""coord"":[""1"",""2""]}]"\n', "at least 3 vertices"),
    ],
)
def test_malformed_csv_names_the_line_and_the_fix(label_platform, text, needle):
    with pytest.raises(BadInput) as err:
        import_csv(label_platform, "#数据ID,原始数据,融合答案\n" + text, "bad")
    assert needle in err.value.message
    with label_platform.store.transaction() as s:
        assert sv.list_tasks(s, "owner", "default") == []


def test_golden_labeling_csv_still_matches():
    assert (GOLDEN / "object-detection" / "export.csv").exists()


def test_traced_outlines_draw_back_the_same_mask():
    """Any mask without holes: its outlines, drawn again, give the same pixels (a triangle's staircase too)."""
    mask = masks.rasterize(60, 40, [([[5, 5], [40, 8], [20, 35]], 1), ([[30, 20], [58, 20], [58, 39], [30, 39]], 2)])
    assert (mask == 1).sum() > 300 and mask[25, 45] == 2  # the later polygon covers the earlier one
    outlines = masks.trace(mask)
    assert (masks.rasterize(60, 40, outlines) == mask).all()
    assert masks.trace(masks.decode(masks.encode(mask), "mask")) == outlines


def test_text_recognition_creates_its_template_once_and_refuses_a_different_one(label_platform, tmp_path):
    text = localized("text-recognition", example_images(tmp_path))
    first = import_csv(label_platform, text, "tr-1")
    second = import_csv(label_platform, text, "tr-2")  # the template made by the first import serves again
    assert first.template == second.template == "text-recognition"
    with label_platform.store.transaction() as s:
        sv.delete_task(s, "owner", "default", first.id)
        sv.delete_task(s, "owner", "default", second.id)
        sv.delete_template(s, "owner", "default", "text-recognition")
        spec = {
            "name": "text-recognition",
            "contents": [{"type": "text"}],
            "questions": [{"type": "single", "title": "x"}],
        }
        sv.create_template(s, "owner", "default", spec)
    with pytest.raises(BadInput) as err:
        import_csv(label_platform, text, "tr-3")
    assert err.value.field == "template"
