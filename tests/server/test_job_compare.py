"""Jobs' metrics side by side: ``ws.jobs.compare`` in a notebook (one chart per metric with every job's
curve, a table of final values) and `pai dlc compare`, on jobs run by a real `pai server` and Dask."""

from __future__ import annotations

import json
import re

import pytest

from pai_lab.errors import BadInput

SCRIPT = r"""
import argparse
import pai_lab.training as pai
parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int)
parser.add_argument("--rate", type=float)
parser.add_argument("--task_index", type=int, default=0)
args, _ = parser.parse_known_args()
for step in range(0, args.steps + 1, 10):
    metrics = {"loss": 1.0 / (1 + args.rate * step) + args.task_index * 0.01}
    if args.rate > 1:
        metrics["accuracy"] = step / args.steps
    pai.report(step=step, **metrics)
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def two_jobs(live_server, tmp_path_factory):
    script = tmp_path_factory.mktemp("compare") / "curves.py"
    script.write_text(SCRIPT)
    ws = live_server.client().workspace("default")
    fast = ws.jobs.submit(name="fast", command=f"python {script} --steps=50 --rate=2", workers=2)
    slow = ws.jobs.submit(name="slow", command=f"python {script} --steps=30 --rate=0.5", workers=1)
    for job in (fast, slow):
        job.wait(timeout=180, poll=0.3)
        assert job.state == "Succeeded", job.reason
    return ws, fast, slow


def test_compare_overlays_each_metric_and_tabulates_final_values(two_jobs):
    ws, fast, slow = two_jobs
    comparison = ws.jobs.compare([fast.id, slow])  # ids or Job objects
    assert comparison.metrics == ["accuracy", "loss"]
    loss = comparison.curves("loss")
    assert set(loss) == {"fast", "slow"}
    assert [s for s, _ in loss["fast"]] == [0, 10, 20, 30, 40, 50] and [s for s, _ in loss["slow"]] == [0, 10, 20, 30]
    assert loss["fast"][-1][1] == pytest.approx((1 / 101 + (1 / 101 + 0.01)) / 2)  # the mean of its two ranks
    assert set(comparison.curves("accuracy")) == {"fast"}  # the slow job never reported it

    table = comparison.to_pandas().set_index("job")
    assert table.loc["slow", "loss"] == pytest.approx(1 / 16) and table.loc["slow", "last_step"] == 30
    assert (
        table.loc["fast", "accuracy"] == pytest.approx(1.0)
        and table.loc["slow", "accuracy"] != table.loc["slow", "accuracy"]
    )  # NaN: no value

    page = comparison._repr_html_()
    charts = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(charts) == 2  # one per metric
    loss_chart = next(c for c in charts if ">loss</text>" in c)
    assert (
        loss_chart.count("<polyline") == 2
        and "<title>fast</title>" in loss_chart
        and "<title>slow</title>" in loss_chart
    )
    assert "<table" in page and "0.0625" in page


def test_compare_bounds_and_pai_dlc_compare(two_jobs, cli, tmp_path):
    ws, fast, slow = two_jobs
    with pytest.raises(BadInput) as one:
        ws.jobs.compare([fast.id])
    assert one.value.field == "jobs"

    page = tmp_path / "compare.html"
    rc, out, err = cli("dlc", "compare", fast.id, slow.id, "--html", str(page))
    assert rc == 0, err
    assert out.splitlines()[1].split()[:2] == ["JOB", "ID"] and "0.0625" in out
    assert page.read_text().count("<svg") == 2
    rc, out, err = cli("dlc", "compare", fast.id, slow.id, "--json")
    rows = {r["job"]: r for r in json.loads(out)}
    assert rows["slow"]["accuracy"] is None and rows["fast"]["last_step"] == 50
    rc, _, err = cli("dlc", "compare", fast.id)
    assert rc == 2 and "from 2 to 10 jobs" in err
