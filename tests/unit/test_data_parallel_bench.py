"""The data-parallel benchmark still runs end to end (a tiny model, 1 rank then 2 ranks)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf


def test_data_parallel_benchmark_smoke():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "data_parallel.py"
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    one = float(re.search(r"run 1: 1 rank +([\d.]+) steps/s", out)[1])
    two = float(re.search(r"run 1: 2 ranks +([\d.]+) steps/s", out)[1])
    efficiency = float(re.search(r"efficiency E\(2\) = ([\d.]+)", out)[1])
    assert one > 0 and two > 0
    assert efficiency == pytest.approx(two / (2 * one), abs=2e-3)
    assert "global batch 16" in out and "CPUs, load average" in out
