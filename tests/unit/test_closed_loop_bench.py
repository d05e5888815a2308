"""The closed-loop benchmark keeps working: its comparison logic, its anchor, and one tiny round of the
whole loop on the platform (label, train on 2 ranks, serve, score, pre-label, order)."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "closed_loop.py"
LAST_LINE = re.compile(
    r"labels to 95%: uncertainty (\d+), random (\d+) \(ratio (\d+\.\d\d)\); "
    r"anchor ratio (\d+\.\d\d)"
)


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT))


def test_labels_to_target_is_the_first_round_at_the_target(bench):
    labels_to_target = bench["labels_to_target"]
    curve = [(50, 0.81), (100, 0.951), (150, 0.94), (200, 0.97)]
    assert labels_to_target(curve, 0.95) == (100, True)
    assert labels_to_target(curve, 0.96) == (200, True)
    assert labels_to_target(curve, 0.99) == (200, False)  # never reached: the labels it stopped at


def test_splits_are_disjoint_stratified_and_seeded(bench):
    _, y = bench["digits"]()
    pool, test = bench["split"](y, 3, 0.3, None, None)
    assert len(y) == 1797 and not set(pool) & set(test) and len(pool) + len(test) == 1797
    assert abs(len(test) - 0.3 * 1797) <= 1
    assert set(y[test]) == set(range(10))
    again, _ = bench["split"](y, 3, 0.3, None, None)
    other, _ = bench["split"](y, 4, 0.3, None, None)
    assert list(again) == list(pool) and list(other[:50]) != list(pool[:50])


def test_anchor_uncertainty_needs_fewer_labels_than_random(bench, capsys):
    result = bench["main"](["--anchor-only", "--anchor-seeds", "4", "--max-labels", "1000"])
    anchor = result["anchor"]
    u, r = anchor["uncertainty"], anchor["random"]
    assert all(u["reached"]) and all(r["reached"])
    assert all(n % 50 == 0 and 50 <= n <= 1000 for n in u["per_seed"] + r["per_seed"])
    assert anchor["ratio"] == pytest.approx(u["mean"] / r["mean"])
    assert anchor["ratio"] < 0.8  # least confidence pays on digits, as the recipe users know shows
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("labels to 95%: uncertainty nan, random nan (ratio nan); anchor ratio ")


@pytest.mark.tf
def test_smoke_run_closes_the_loop_on_the_platform():
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
    rounds = [line for line in lines if "pai_lab " in line and " round " in line]
    assert len(rounds) == 2, lines  # one round per order, at 20 labels
    for line in rounds:
        assert "20 labels, test accuracy" in line
        # the served model pre-labelled the rest of the 120-item pool, and the task was reordered
        assert re.search(r"pre-labelled 100 items in [\d.]+ s, ordered in", line), line
    first = next(line for line in lines if line.startswith("one round from a fresh control plane"))
    assert float(re.search(r"prediction: ([\d.]+) s", first).group(1)) > 0


def test_the_anchor_starts_from_the_typical_package_the_server_makes(bench, live_server, unique_name):
    """--first-package typical: the anchor's first package is the one task.order("typical") makes on a
    server over the same pool, so the anchor and the platform's loops start alike."""
    import argparse

    x, y = bench["digits"]()
    pool, _ = bench["split"](y, 2, 0.3, 200, None)
    ws = live_server.client().workspace("default")
    dataset = ws.datasets.register(unique_name("digits"), "sample://digits", progress=False)
    items = {int(Path(i.source).stem): i for i in dataset.items()}
    task = ws.labeling.create_task(
        unique_name("typical"),
        "image-classification",
        labels=[str(d) for d in range(10)],
        lines=[{"data": {"source": items[i].source}} for i in pool],
        package_size=20,
    )
    assert task.order("typical", seed=2).items == 200
    on_server = sorted(int(Path(i.data["source"]).stem) for i in task.items(1))

    args = argparse.Namespace(test_fraction=0.3, pool=200, test=None, round_size=20, first_package="typical")
    anchor = bench["Anchor"](x, y, args)
    anchor.begin("uncertainty", 2)
    assert anchor.label_round() == 20
    assert sorted(anchor.labelled) == on_server
    assert sorted(anchor.labelled) != sorted(pool[:20])  # not the seeded first package
