"""What a notebook shows for a workspace, a job and its monitor, against a real `pai server`."""

from __future__ import annotations

import re

# Reports as pai.keras_callback does (contract C4): batch points every 2 batches, then one epoch-end point
# carrying `epoch` and the epoch logs; rank 1 then fails with a line that looks like HTML.
EPOCH_SCRIPT = r"""
import os, sys, time
import pai_lab.training as pai
rank = int(os.environ.get("PAI_LAB_TASK_INDEX", "0"))
step = 0
for epoch in range(1, 4):
    for batch in range(6):
        step += 1
        if step % 2 == 0:
            pai.report(step, loss=3.0 - 0.1 * step, accuracy=0.02 * step)
    pai.report(step, epoch=epoch, loss=2.0 / epoch, accuracy=0.3 * epoch, val_loss=2.5 / epoch,
               val_accuracy=0.25 * epoch)
if rank == 1:
    time.sleep(3)
    print('<b onclick="x()">bad & broken</b>', flush=True)
    sys.exit(3)
time.sleep(300)
"""


def _polylines(svg: str) -> dict[str, list[tuple[float, float]]]:
    lines = re.findall(r'<polyline [^>]*points="([^"]*)"><title>([^<]*)</title>', svg)
    return {name: [tuple(map(float, xy.split(","))) for xy in coords.split()] for coords, name in lines}


def test_job_monitor_plots_epoch_metrics_and_the_job_shows_its_state(live_server, tmp_path):
    script = tmp_path / "epochs.py"
    script.write_text(EPOCH_SCRIPT)
    ws = live_server.client().workspace("default")
    job = ws.jobs.submit(name="epochs", command=f"python {script}", workers=2)
    job.wait(timeout=180, poll=0.3)
    assert job.state == "Failed"

    page = job._repr_html_()
    assert f"<b>{job.id}</b> epochs" in page and "Failed" in page and job.progress in page
    assert f"{job.id}-worker-0" in page and f"{job.id}-worker-1" in page and "<td>3</td>" in page
    assert "&lt;b onclick=&quot;x()&quot;&gt;bad &amp; broken&lt;/b&gt;" in page and "<b onclick" not in page

    panel = job.monitor(refresh=0)
    figures = re.findall(r"<svg.*?</svg>", panel.epochs.value)
    assert len(figures) == 2  # loss and accuracy, each with its validation twin
    loss, accuracy = figures
    for svg, metric in ((loss, "loss"), (accuracy, "accuracy")):
        assert '<text class="x-label"' in svg and ">epoch</text>" in svg
        assert re.search(rf'class="y-label"[^>]*>{metric}</text>', svg)
        lines = _polylines(svg)
        assert sorted(lines) == sorted([metric, f"val_{metric}"])  # train and validation on one axes
        assert all(len(points) == 3 for points in lines.values())  # three epochs each
        assert svg.count('class="legend"') == 2 and f">val_{metric}</text></g>" in svg
    # x runs 1..3 (epochs, not steps); train loss 2.0 -> 0.667 falls, so its line goes down the page
    assert ">1</text>" in loss and ">3</text>" in loss
    ys = [y for _x, y in _polylines(loss)["loss"]]
    assert ys[0] < ys[1] < ys[2]

    # batch points: one thin line per rank against step, without the epoch points
    assert panel.metric.value == "loss"
    batches = _polylines(panel.chart.value)
    assert sorted(batches) == ["worker-0", "worker-1"] and all(len(p) == 9 for p in batches.values())
    assert ">step</text>" in panel.chart.value


def test_workspace_shows_name_description_members_and_counts(live_server, unique_name):
    client = live_server.client()
    name = unique_name("ws")
    ws = client.create_workspace(name, "images <b>& more</b>")
    ws.members.add("gina", ["AlgorithmDeveloper"])
    ws.datasets.register("numbers", items=["one", "two", "three"])
    page = ws._repr_html_()
    assert f"workspace {name}" in page
    assert "images &lt;b&gt;&amp; more&lt;/b&gt;" in page and "<b>& more" not in page
    assert "<td>gina</td><td>AlgorithmDeveloper</td>" in page and "Owner" in page
    assert ws.counts() == {"datasets": 1, "labeling tasks": 0, "jobs": 0, "services": 0}
    assert "<b>1</b> datasets" in page and "<b>0</b> jobs" in page and "<b>0</b> services" in page
