"""The pipeline overhead benchmark runs end to end at tiny sizes and reports both shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# tiny shapes, one run of each and no settling pause between runs: the figures of a run this small mean nothing
SMOKE = ["--chain", "3", "--fanout", "4", "--repeat", "1", "--settle", "0"]


def test_the_pipeline_overhead_benchmark_reports_both_shapes_against_bare_dask():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pipeline_overhead.py"), *SMOKE],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    *_, figures, summary = done.stdout.strip().splitlines()
    results = json.loads(figures)
    assert results["chain"]["steps"] == 3 and results["fan-out"]["steps"] == 4
    for shape in ("chain", "fan-out"):
        assert results[shape]["pai_s"] > 0 and results[shape]["dask_s"] > 0
    assert summary.startswith("chain: ") and "ms/step); fan-out: " in summary
