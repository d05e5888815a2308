"""Reading registered data with TensorFlow: decoded images with labels, texts, sharding per worker."""

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from pai_lab.datasets import readers, samples
from pai_lab.datasets import service as svc
from pai_lab.datasets.schemas import DatasetCreate
from pai_lab.datasets.sources import Roots
from pai_lab.platform import Platform

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    p = Platform(tmp_path_factory.mktemp("readers") / "root", owner="owner").start()
    with p.store.transaction() as s:
        for sample in ("digits", "reviews", "shapes"):
            svc.register_dataset(
                s,
                "owner",
                "default",
                DatasetCreate(name=sample, source=f"sample://{sample}"),
                roots=Roots.from_platform(p),
                state_dir=p.state_dir,
            )
    yield p
    p.store.dispose()


def lines_of(platform, name):
    with platform.store.transaction() as s:
        return list(svc.iter_items(s, "owner", "default", name))


def _shipped_digits() -> list[tuple[list[float], int]]:
    """The digits as shipped (one CSV row per image: 64 pixels 0-16, then the digit), read here
    without the code under test."""
    with gzip.open(samples.DIGITS_CSV, "rt") as f:
        return [([float(v) for v in row[:64]], int(float(row[64]))) for row in csv.reader(f)]


def test_images_with_labels_from_the_export(registry):
    shipped = _shipped_digits()
    lines = lines_of(registry, "digits")
    ds = readers.to_tf_dataset(lines, image_size=(16, 16), channels=1, batch_size=64, shard=None)
    assert ds.class_names == sorted({str(d) for _, d in shipped}) and ds.item_count == len(shipped) == 1797
    images, labels = next(iter(ds))
    assert images.shape == (64, 16, 16, 1) and images.dtype.name == "float32"
    # each item's file is the shipped row of its number: its digit, and its pixels (ink dark, 0-16 -> 1-0)
    rows = [shipped[int(Path(line["data"]["source"]).stem)] for line in lines[:64]]
    assert [ds.class_names[i] for i in labels.numpy().tolist()] == [str(digit) for _, digit in rows]
    for image, (pixels, _) in zip(images.numpy()[:8], rows):
        ink = np.kron(np.array(pixels).reshape(8, 8), np.ones((2, 2)))  # 8x8 shown at 16x16
        assert np.abs(image[:, :, 0] - (1 - ink / 16)).max() < 2 / 255


def test_shards_are_disjoint_and_cover_everything(registry, monkeypatch):
    lines = lines_of(registry, "reviews")
    texts = [line["data"]["source"] for line in lines]
    for by in ("item", "file"):
        seen = []
        for index in range(3):
            cluster = {"chief": ["h:1"], "worker": ["h:2", "h:3"]} if by == "item" else {"worker": ["a", "b", "c"]}
            task = (
                {"type": "chief", "index": 0}
                if (by == "item" and index == 0)
                else {"type": "worker", "index": index - 1 if by == "item" else index}
            )
            monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
            ds = readers.to_tf_dataset(lines, data_type="text", shard_by=by)
            assert ds.class_names == ["negative", "positive"]
            seen.append([t.numpy().decode() for t, _label in ds])
        assert sorted(text for shard in seen for text in shard) == sorted(texts)
        assert all(abs(len(part) - len(texts) / 3) < 1 for part in seen)


def test_detection_boxes_and_folder_labels(registry):
    line = lines_of(registry, "shapes")[0]
    boxes = readers.boxes(line)
    assert boxes and all(b["label"] in ("square", "circle") and b["xmin"] < b["xmax"] for b in boxes)
    assert readers.folder_label("cat/001.png") == "cat" and readers.folder_label("001.png") is None
