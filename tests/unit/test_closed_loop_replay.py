"""The closed-loop replay's orders pick what their papers say on small cases, and the replay runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.closed_loop_orders import badge, cluster_margin, margin, pick, probcover, typiclust

REPLAY = Path(__file__).resolve().parents[2] / "benchmarks" / "closed_loop_replay.py"


def two_blobs() -> np.ndarray:
    """Items 0-9 around (0, 0), 10-19 around (10, 10): each blob a ring of nine with item 3 / 13 at its centre."""
    angles = np.linspace(0, 2 * np.pi, 9, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.linspace(1, 2, 9)[:, None]
    one = np.insert(ring, 3, (0, 0), axis=0)
    return np.vstack([one, one + 10])


def probs_with_margins(margins: list[float]) -> np.ndarray:
    top = (1 + np.array(margins)) / 2
    return np.stack([top, 1 - top] + [np.zeros(len(margins))] * 8, axis=1)


def test_typiclust_takes_the_most_typical_item_of_a_cluster_without_labels():
    emb = two_blobs()
    # item 0 (blob one) is labelled: the next label is blob two's centre, not another item of blob one
    assert typiclust(emb, [0], [i for i in range(20) if i != 0], 1, seed=0) == [13]
    # nothing labelled, two labels: both centres
    assert sorted(typiclust(emb, [], list(range(20)), 2, seed=0)) == [3, 13]


def test_cluster_margin_spreads_the_least_sure_items_over_clusters():
    emb = two_blobs()
    # blob one's items are the least sure; blob two's item 12 is the least sure of its blob
    m = [0.01 * i for i in range(10)] + [0.5, 0.4, 0.2, 0.6, 0.7, 0.8, 0.9, 0.95, 0.96, 0.97]
    probs = probs_with_margins(m)
    assert np.allclose(margin(probs), m)
    unlabelled = list(range(20))
    assert pick("margin", {"probs": probs}, emb, [], unlabelled, 2, 0, 2) == [0, 1]  # margin alone: one blob
    assert sorted(cluster_margin(probs, emb, unlabelled, 2, seed=0, widen=10)) == [0, 12]


def test_probcover_covers_the_uncovered_blob_first():
    emb = two_blobs()
    probs = probs_with_margins([0.5] * 20)
    chosen = probcover(emb, [3], [i for i in range(20) if i != 3], 1, seed=0, probs=probs, groups=2)
    assert chosen[0] >= 10  # blob one is covered by its labelled centre


def test_badge_takes_distinct_items_and_hybrids_switch_to_margin():
    emb = two_blobs()
    probs = probs_with_margins([0.01 * i for i in range(20)])
    hidden = np.abs(emb)
    chosen = badge(probs, hidden, list(range(20)), 5, seed=1)
    assert len(set(chosen)) == 5
    model = {"probs": probs, "hidden": hidden}
    unlabelled = [i for i in range(20) if i != 0]
    assert pick("typi1_margin", model, emb, [0], unlabelled, 1, 0, 1) == [13]  # round one: typiclust
    assert pick("typi1_margin", model, emb, [0], unlabelled, 1, 0, 2) == [1]  # then the least margin
    with pytest.raises(ValueError, match="unknown order"):
        pick("nearest", model, emb, [0], unlabelled, 1, 0, 1)


@pytest.mark.tf
def test_replay_smoke_run_compares_an_order_with_random():
    done = subprocess.run(
        [
            *(sys.executable, str(REPLAY), "--smoke", "--orders", "typi1_margin", "--first-package", "typical"),
            *("--anchor", "--holdout", "0", "--pseudo", "5"),
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    rounds = [line for line in lines if re.match(r"\s+(random|typi1_margin)\s+seed", line)]
    assert len(rounds) == 4, lines  # two seeds, two orders
    assert all("(50:" in line and "100:" in line and "load average" in line for line in rounds)
    assert re.match(r"typi1_margin: 100\.0 / 100\.0 labels \(ratio 1\.000\), seeds 0-1", lines[-1]), lines[-1]
    anchor = next(line for line in lines if line.startswith("anchor (LogisticRegression"))
    assert re.match(r"anchor .*: \d+\.\d / \d+\.\d labels \(ratio \d\.\d{3}\), seeds 0-1", anchor), anchor


def test_pseudo_labels_take_the_surest_unlabelled_items_per_class_above_the_threshold():
    from benchmarks.closed_loop_replay import Replay

    replay = Replay(np.zeros((8, 16, 16, 1)), np.zeros(8, int), epochs=1, pseudo=2)
    probs = np.full((8, 10), 0.0)
    # items 0-3 sure of class 0 (0.999, 0.995, 0.9999, 0.98), 4-5 sure of class 1, 6 unsure, 7 labelled
    for item, (c, p) in enumerate([(0, 0.999), (0, 0.995), (0, 0.9999), (0, 0.98), (1, 0.991), (1, 0.999), (2, 0.5)]):
        probs[item, c] = p
        probs[item, (c + 1) % 10] = 1 - p
    probs[7, 3] = 1.0
    # at most 2 per class, surest first, never under 0.99, only the unlabelled items asked about
    assert replay.confident(probs, [0, 1, 2, 3, 4, 5, 6]) == [0, 2, 4, 5]
    assert replay.confident(probs, [1, 3, 6]) == [1]


def test_random_can_start_from_the_seeded_package_while_the_order_starts_from_the_typical_one():
    import argparse

    from benchmarks.closed_loop_data import digits
    from benchmarks.closed_loop_replay import first_package

    x, y = digits()
    pca = x[:, :20].astype(float)
    args = argparse.Namespace(
        test_fraction=0.3, round_size=20, first_package="typical", random_first_package="seeded", x=x
    )
    order_first, order_rest, test = first_package(y, pca, 4, args, "margin")
    random_first, random_rest, again = first_package(y, pca, 4, args, "random")
    assert list(test) == list(again) and len(order_first) == len(random_first) == 20
    assert sorted(order_first + order_rest) == sorted(random_first + random_rest)  # one pool, two starts
    assert set(order_first) != set(random_first)
    args.random_first_package = "same"
    assert first_package(y, pca, 4, args, "random")[0] == order_first
