"""Orders that compare the items: a typical first package (TypiClust) and a cluster-margin next
package, over an embedding the server reads from the items' images once per task."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pai_lab.errors import BadInput
from pai_lab.labeling import embeddings, ordering
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv

W = "default"


def blobs(sizes, spread=0.1, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Points in well-apart blobs along a line in 2-D, each blob's points spread evenly; (points, blob)."""
    rows, which = [], []
    for b, size in enumerate(sizes):
        offsets = (np.arange(size) - (size - 1) / 2) * spread
        rows += [[10.0 * b + o, 5.0 * (b % 2)] for o in offsets]
        which += [b] * size
    return np.array(rows), np.array(which)


def test_kmeans_finds_apart_blobs():
    points, which = blobs([6, 4, 3])
    labels = ordering.kmeans(points, 3, seed=1)
    assert len(set(labels)) == 3
    for b in range(3):
        assert len(set(labels[which == b])) == 1  # each blob one cluster


def test_typiclust_takes_the_middle_of_each_blob_the_largest_first_and_skips_covered_blobs():
    points, which = blobs([5, 3, 1])
    chosen = ordering.typiclust(points, np.zeros(len(points), bool), 3, seed=0)
    assert chosen == [2, 6, 8]  # the middles of the blobs of 5, of 3, and the lone point
    labelled = np.zeros(len(points), bool)
    labelled[2] = True  # the largest blob has a label: the next budget goes to the others
    k = ordering.typiclust(points, labelled, 2, seed=0)
    assert sorted(which[k]) == [1, 2] and 2 not in k


def test_large_inputs_stay_bounded_and_a_sampled_cluster_still_gives_a_typical_item():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6000, 5))  # one big blob: clusters past MAX_TYPICALITY items are sampled
    labelled = np.zeros(len(points), bool)
    labelled[:3000] = True  # labelled + budget clusters would be 3,002: k stays at MAX_CLUSTERS
    chosen = ordering.typiclust(points, labelled, 2, seed=0)
    assert len(set(chosen)) == 2 and not labelled[chosen].any()
    whole = ordering.typiclust(points[:2500], np.zeros(2500, bool), 1, seed=0)  # one cluster of 2,500: sampled
    norms = np.linalg.norm(points[:2500], axis=1)
    assert norms[whole[0]] < np.quantile(norms, 0.1)  # from the dense middle of the blob


def test_cluster_margin_spreads_the_package_over_unlike_uncertain_items():
    points, _ = blobs([5, 3, 4])
    # blob 0 the least sure, then blob 1; blob 2 sure
    margins = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.10, 0.11, 0.12, 0.9, 0.91, 0.92, 0.93])
    chosen = ordering.cluster_margin(margins, points, 2, seed=0)
    assert chosen == [0, 5]  # the least-margin item of each blob among the 8 candidates
    assert sorted(np.argsort(margins)[:2]) == [0, 1]  # margin alone: both from blob 0
    assert ordering.cluster_margin(margins[:2], points[:2], 2, seed=0) == [0, 1]  # fewer candidates than slots


# ---------------------------------------------------------------- through the labeling service, from images


def shade(kind: str, j: int) -> Image.Image:
    """Three kinds of 24x24 image that differ a lot (dark, striped, light), each item a little
    (``j``: a small step of grey)."""
    a = np.zeros((24, 24), np.uint8)
    if kind == "dark":
        a[:] = 30 + 4 * j
    elif kind == "light":
        a[:] = 225 - 4 * j
    else:
        a[:] = 4 * j
        a[:, ::4] = a[:, 1::4] = 200 + 4 * j
    return Image.fromarray(a, "L")


# the lines, in this order: 5 dark, 3 striped, 1 light (middles: dark 2, striped 1)
KINDS = [("dark", 0), ("striped", 0), ("dark", 1), ("light", 0), ("dark", 2)]
KINDS += [("striped", 1), ("dark", 3), ("striped", 2), ("dark", 4)]


@pytest.fixture
def platform(media_platform):
    return media_platform


def image_task(platform, size=3) -> tuple[str, list]:
    folder = platform.root_dir / "shades"
    folder.mkdir(exist_ok=True)
    files = []
    for i, (kind, j) in enumerate(KINDS):
        files.append(folder / f"{i}.png")
        shade(kind, j).save(files[-1])
    body = sc.TaskCreate(
        name="shades",
        template="image-classification",
        labels=["a", "b"],
        package_size=size,
        lines=[{"data": {"source": str(f)}} for f in files],
    )
    with platform.store.transaction() as s:
        return sv.create_task(s, "owner", W, body).id, files


def _do(where, fn, *args, **kw):
    with where.store.transaction() as s:
        return fn(s, *args, **kw)


def package(platform, task_id, number) -> list[int]:
    return sorted(i.seq for i in _do(platform, sv.package_items, "owner", W, task_id, number))


def test_the_typical_order_makes_a_first_package_of_each_kinds_middle_and_keeps_it_once_computed(platform):
    task_id, files = image_task(platform)
    done = sv.order_task(platform, "owner", W, task_id, "typical")
    assert (done.by, done.packages, done.items, done.scored) == ("typical", 3, 9, 0)
    assert package(platform, task_id, 1) == [3, 4, 5]  # the middle dark (seq 4), striped (5), the light one (3)
    # the embedding is kept per task: the images can go and the order stays the same
    for f in files:
        f.unlink()
    embeddings.embeddings(platform)._memory.clear()  # from the server's cache folder, too
    sv.order_task(platform, "owner", W, task_id, "typical")
    assert package(platform, task_id, 1) == [3, 4, 5]


def test_cluster_margin_fills_the_next_package_with_unlike_uncertain_suggestions(platform):
    task_id, _ = image_task(platform, size=2)
    margins = {0: 0.05, 2: 0.01, 4: 0.02, 6: 0.03, 8: 0.04, 1: 0.10, 5: 0.11, 7: 0.12}  # seq 3 (light): no score
    items = [
        sc.Prelabel(item=seq, answer="a", scores={"a": (1 + m) / 2, "b": (1 - m) / 2}) for seq, m in margins.items()
    ]
    _do(platform, sv.attach_prelabels, "owner", W, task_id, sc.PrelabelBatch(source="m", items=items))
    done = sv.order_task(platform, "owner", W, task_id, "cluster_margin")
    assert (done.packages, done.items, done.scored) == (5, 9, 8)
    assert package(platform, task_id, 1) == [1, 2]  # the least sure dark one and the least sure striped one
    _do(platform, sv.order, "owner", W, task_id, "margin")
    assert package(platform, task_id, 1) == [2, 4]  # margin alone: two dark ones


def test_orders_over_images_say_what_they_need(platform):
    with platform.store.transaction() as s:
        text = sv.create_task(
            s,
            "owner",
            W,
            sc.TaskCreate(
                name="words", template="text-classification", labels=["a", "b"], lines=[{"data": {"source": "hi"}}]
            ),
        )
    with pytest.raises(BadInput) as err:
        sv.order_task(platform, "owner", W, text.id, "typical")
    assert err.value.field == "by" and "image" in str(err.value) and "margin" in str(err.value)
    task_id, _ = image_task(platform)
    with pytest.raises(BadInput) as err:
        _do(platform, sv.order, "owner", W, task_id, "cluster_margin")
    assert err.value.field == "by"
