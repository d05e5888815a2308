"""Reading registered data with TensorFlow: decoded images with labels, texts, sharding per worker."""

import json

import pytest

from pai_lab.datasets import readers
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
            svc.register_dataset(s, "owner", "default", DatasetCreate(name=sample, source=f"sample://{sample}"),
                                 roots=Roots.from_platform(p), state_dir=p.state_dir)
    yield p
    p.store.dispose()


def lines_of(platform, name):
    with platform.store.transaction() as s:
        return list(svc.iter_items(s, "owner", "default", name))


def test_images_with_labels_from_the_export(registry):
    lines = lines_of(registry, "digits")
    ds = readers.to_tf_dataset(lines, image_size=(16, 16), channels=1, batch_size=64, shard=None)
    assert ds.class_names == [str(d) for d in range(10)] and ds.item_count == 1797
    images, labels = next(iter(ds))
    assert images.shape == (64, 16, 16, 1) and images.dtype.name == "float32"
    assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0
    expected = [int(readers.class_label(line)) for line in lines[:64]]
    assert labels.numpy().tolist() == expected


def test_shards_are_disjoint_and_cover_everything(registry, monkeypatch):
    lines = lines_of(registry, "reviews")
    texts = [line["data"]["source"] for line in lines]
    for by in ("item", "file"):
        seen = []
        for index in range(3):
            cluster = {"chief": ["h:1"], "worker": ["h:2", "h:3"]} if by == "item" else {"worker": ["a", "b", "c"]}
            task = {"type": "chief", "index": 0} if (by == "item" and index == 0) else {
                "type": "worker", "index": index - 1 if by == "item" else index}
            monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
            ds = readers.to_tf_dataset(lines, data_type="text", shard_by=by)
            assert ds.class_names == ["negative", "positive"]
            seen.append([t.numpy().decode() for t, _label in ds])
        assert sorted(sum(seen, [])) == sorted(texts)
        assert all(abs(len(part) - len(texts) / 3) < 1 for part in seen)


def test_detection_boxes_and_folder_labels(registry):
    line = lines_of(registry, "shapes")[0]
    boxes = readers.boxes(line)
    assert boxes and all(b["label"] in ("square", "circle") and b["xmin"] < b["xmax"] for b in boxes)
    assert readers.folder_label("cat/001.png") == "cat" and readers.folder_label("001.png") is None
