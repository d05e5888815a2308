"""The orders that compare the items' images, against a real `pai server` through the Python client
and the CLI: a typical first package before any model, then a cluster-margin next package."""

from __future__ import annotations

import zipfile

import pytest

from pai_lab.errors import BadInput
from tests.unit.test_labeling_ordering import KINDS, shade


@pytest.fixture
def ws(live_server):
    return live_server.client().workspace("default")


def shades_task(live_server, ws, name: str, size: int):
    folder = live_server.root / name
    folder.mkdir()
    for i, (kind, j) in enumerate(KINDS):
        shade(kind, j).save(folder / f"{i}.png")
    return ws.labeling.create_task(
        name,
        "image-classification",
        labels=["a", "b"],
        package_size=size,
        lines=[{"data": {"source": f"{name}/{i}.png"}} for i in range(len(KINDS))],
    )


def test_a_typical_first_package_then_cluster_margin_through_the_client(live_server, ws, unique_name):
    task = shades_task(live_server, ws, unique_name("kinds"), size=2)
    with pytest.raises(BadInput) as refused:  # a negative seed is named, not a server error
        task.order("typical", seed=-1)
    assert refused.value.field == "seed"
    # a cache file that cannot be read (a crash mid-write, a full disk) is made again
    cache = live_server.root / ".pai_lab" / "cache" / "embeddings"
    cache.mkdir(parents=True, exist_ok=True)
    saved = cache / f"{task.info.id}-{len(KINDS)}.npz"
    saved.write_bytes(b"not a zip")
    done = task.order("typical")
    assert zipfile.is_zipfile(saved)
    assert (done.by, done.packages, done.items, done.scored) == ("typical", 5, 9, 0)
    first = task.claim()
    assert first is not None and first.number == 1
    assert sorted(i.seq for i in task.items(first)) == [4, 5]  # the middles of the two largest kinds
    for item in task.items(first):
        task.submit(item.seq, "a")
    task.submit_package(first)

    # the model is least sure of the dark images, then of the striped ones
    margins = {0: 0.05, 2: 0.01, 6: 0.03, 8: 0.04, 1: 0.10, 7: 0.12}
    task.prelabel(
        predictions={s: {"answer": "a", "scores": {"a": (1 + m) / 2, "b": (1 - m) / 2}} for s, m in margins.items()},
        progress=False,
    )
    done = task.order("cluster_margin", seed=3)
    assert (done.by, done.packages, done.items, done.scored) == ("cluster_margin", 4, 7, 6)
    nxt = task.claim()
    assert nxt is not None
    # the least sure dark one and the least sure striped one; by margin alone, two dark ones (2 and 6)
    assert sorted(i.seq for i in task.items(nxt)) == [1, 2]


def test_the_cli_orders_typical_and_a_task_without_images_is_told_what_to_use(cli, live_server, ws, unique_name):
    name = unique_name("clikinds")
    shades_task(live_server, ws, name, size=3)
    rc, out, err = cli("label", "order", name, "--by", "typical")
    assert rc == 0 and "9 items" in out and "by typical" in out, err
    assert sorted(i.seq for i in ws.labeling.get(name).items(1)) == [3, 4, 5]

    words = unique_name("cliwords")
    ws.labeling.create_task(words, "text-classification", labels=["a", "b"], lines=[{"data": {"source": "hi"}}])
    rc, out, err = cli("label", "order", words, "--by", "cluster_margin")
    assert rc != 0 and "shows no image" in err and "margin" in err
