"""The replay's semi-supervised training: label spreading follows the pool's clusters, the shifts move
images as FixMatch's views do, and the replay trains with them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.closed_loop_semi import shift, spread, spread_training_set, strong_shifts

REPLAY = Path(__file__).resolve().parents[2] / "benchmarks" / "closed_loop_replay.py"


def blobs() -> np.ndarray:
    """Items 0-19 around (0, 0), 20-39 around (10, 10), 40: halfway between them."""
    rng = np.random.default_rng(0)
    near = rng.normal(size=(20, 2))
    return np.vstack([near, near + 10, [[5.0, 5.0]]])


def test_spreading_gives_each_blob_the_label_of_its_labelled_item():
    emb = blobs()
    unlabelled = [i for i in range(41) if i not in (0, 20)]
    dist = spread(emb, [0, 20], np.array([3, 7]), unlabelled, neighbours=5)
    assert dist.shape == (39, 10)
    reached = dist.sum(1) > 0  # the k-nearest-neighbour graph is directed: a few items no path reaches
    assert np.allclose(dist.sum(1)[reached], 1) and reached.sum() >= 30
    guess = {item: int(dist[n].argmax()) for n, item in enumerate(unlabelled) if reached[n]}
    assert {guess[i] for i in guess if i < 20} == {3} and {guess[i] for i in guess if 20 < i < 40} == {7}


def test_only_items_whose_share_reaches_the_threshold_join_weighted_by_it_when_asked():
    emb = blobs()
    unlabelled = [i for i in range(41) if i not in (0, 20)]
    every, digits, ones = spread_training_set(emb, [0, 20], np.array([3, 7]), unlabelled, 0.0, False, 5)
    reached = spread(emb, [0, 20], np.array([3, 7]), unlabelled, neighbours=5).sum(1) > 0
    assert every == [i for n, i in enumerate(unlabelled) if reached[n]]  # threshold 0: every item reached
    assert set(digits) == {3, 7} and (ones == 1).all()
    sure, _, shares = spread_training_set(emb, [0, 20], np.array([3, 7]), unlabelled, 0.99, True, 5)
    assert set(sure) < set(unlabelled) and (shares >= 0.99).all() and (shares <= 1).all()
    nothing, no_digits, no_weights = spread_training_set(emb, [0], np.array([3]), [], 0.5, False)
    assert nothing == [] and len(no_digits) == len(no_weights) == 0


def test_shifts_move_the_image_and_fill_in_the_edge():
    image = np.arange(16.0).reshape(1, 4, 4, 1)
    right = shift(image, 1, 0)[0, :, :, 0]
    assert right[:, 1:].tolist() == image[0, :, :3, 0].tolist() and right[:, 0].tolist() == image[0, :, 0, 0].tolist()
    up = shift(image, 0, -1)[0, :, :, 0]
    assert up[:3].tolist() == image[0, 1:, :, 0].tolist()
    assert shift(image, 0, 0) is image
    many = np.repeat(image, 30, axis=0)
    moved = strong_shifts(many, seed=3)
    assert moved.shape == many.shape and not np.array_equal(moved, many)
    # each is the image under one shift of at most 2 pixels
    views = [shift(image, dx, dy)[0] for dx in range(-2, 3) for dy in range(-2, 3)]
    assert all(any(np.array_equal(m, v) for v in views) for m in moved)
    assert np.array_equal(strong_shifts(many, seed=3), moved)


@pytest.mark.tf
@pytest.mark.parametrize("flags", [("--spread", "0.9"), ("--fixmatch", "0.95")])
def test_replay_smoke_runs_with_the_unlabelled_pool(flags):
    done = subprocess.run(
        [
            *(sys.executable, str(REPLAY), "--smoke", "--orders", "server_cluster_margin", "--holdout", "0"),
            *("--first-package", "server-typical", "--threads", "1", *flags),
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert f"{flags[0].strip('-')} {flags[1]}" in lines[0], lines[0]
    rounds = [line for line in lines if re.match(r"\s+(random|server_cluster_margin)\s+seed", line)]
    assert len(rounds) == 4, lines
    for line in rounds:  # every round's guesses: right / taken, never more right than taken
        notes = re.search(r"pseudo-labels right (.*) \[", line).group(1).split(", ")
        assert len(notes) in (1, 2) and all(int(a) <= int(b) for a, b in (n.split("/") for n in notes)), line
    if flags[0] == "--spread":  # spreading labels most of the pool from the first 50
        assert int(re.search(r"right \d+/(\d+)", rounds[0]).group(1)) > 500, rounds[0]
