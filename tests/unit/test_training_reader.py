"""The rank-side reader over a snapshot of the shapes sample: boxes as ragged tensors normalised to [0, 1],
a validation split disjoint from training, shards per rank that add up, and the class list beside the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pai_lab.datasets import samples
from pai_lab.training import data

pytestmark = pytest.mark.tf


@pytest.fixture
def shapes(tmp_path, monkeypatch):
    _type, _desc, lines, _folder = samples.materialize("shapes", tmp_path / "state")
    lines = list(lines)
    spooled = data.Lines(lines)
    data_type = data.infer_type(spooled, "image")
    info = {
        "name": "shapes",
        "kind": "dataset",
        "dataset": "shapes",
        "data_type": data_type,
        "class_names": data.class_names(spooled, data_type),
        "storage_options": {},
        "items": spooled.count,
    }
    path = data.write_snapshot(tmp_path / "data", [(info, spooled)])
    monkeypatch.setenv("PAI_LAB_DATA_SOURCES", str(path))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    return lines


def _pixel_boxes(line: dict) -> list[list[float]]:
    """[ymin, xmin, ymax, xmax] / 64 from the sample's polygons, read directly."""
    result = next(v for k, v in line.items() if k.startswith("label-"))["results"][0]
    out = []
    for shape in result["data"]:
        xs, ys = [p[0] for p in shape["value"]], [p[1] for p in shape["value"]]
        out.append([min(ys) / 64, min(xs) / 64, max(ys) / 64, max(xs) / 64])
    return out


def test_detection_items_come_with_their_boxes_and_splits_add_up(shapes, tmp_path, monkeypatch):
    import pai_lab.training as pai

    assert pai.class_names() == ["circle", "square"]
    every = pai.dataset(image_size=(16, 16))
    assert every.item_count == every.total_count == 60
    image, target = next(iter(every))
    assert image.shape == (16, 16, 3) and float(image.numpy().max()) <= 1.0
    np.testing.assert_allclose(target["boxes"].numpy(), _pixel_boxes(shapes[0]), atol=1e-6)

    train = pai.dataset(image_size=(16, 16), subset="training")
    val = pai.dataset(image_size=(16, 16), subset="validation")
    assert (train.total_count, val.total_count) == (54, 6)
    batch = next(iter(pai.dataset(image_size=(16, 16), batch_size=4)))
    assert batch[1]["boxes"].shape.as_list() == [4, None, 4]  # ragged: images have 1 to 3 boxes

    # two ranks read disjoint shares that together are the whole set
    counts = []
    for index in (0, 1):
        monkeypatch.setenv(
            "TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": index}})
        )
        share = pai.dataset(image_size=(8, 8), subset="training")
        counts.append(share.item_count)
        assert share.total_count == 54
    assert sum(counts) == 54

    path = pai.save_class_names(["circle", "square"], str(tmp_path / "model"))
    assert json.loads(Path(path).read_text()) == ["circle", "square"]


def test_without_data_sources_the_reader_says_what_to_do(monkeypatch):
    import pai_lab.training as pai

    monkeypatch.delenv("PAI_LAB_DATA_SOURCES", raising=False)
    with pytest.raises(RuntimeError, match="data_sources"):
        pai.dataset()


def test_shards_are_cut_from_the_labelled_items_so_no_rank_is_left_empty():
    from pai_lab.datasets.readers import to_tf_dataset

    answer = {"results": [{"questionId": "1", "type": "survey/value", "data": "yes"}]}
    lines = [{"data": {"source": f"text {i}"}, **({"label-1": answer} if i in (0, 2) else {})} for i in range(10)]
    shares = [
        [t.numpy().decode() for t, _label in to_tf_dataset(lines, data_type="text", shard=(2, i))] for i in (0, 1)
    ]
    assert shares == [["text 0"], ["text 2"]]  # cut after the unlabelled items were left out
