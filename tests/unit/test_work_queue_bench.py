"""The WorkQueue benchmark runs end to end at a tiny size and reports both shardings and the formulas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_work_queue_benchmark_reports_static_and_queue_makespans():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "work_queue.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    *_, figures, summary = done.stdout.strip().splitlines()
    results = json.loads(figures)
    assert results["static"]["items"] == [6, 6]  # static sharding: an equal share each
    assert sum(results["work_queue"]["items"]) == 12  # the queue: every item once, however it split
    assert results["work_queue"]["slow_items"] < results["work_queue"]["items"][1]  # the slow rank took fewer
    assert results["formula_static_s"] > 0 and results["formula_queue_s"] > 0
    assert summary.startswith("WorkQueue ") and "static" in summary
    assert "cores" in results["machine"] and "load average" in summary  # the machine beside the figures
