"""The serving benchmark still runs end to end (tiny model, one-second loads)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf


def test_serving_benchmark_smoke():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_gateway.py"
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "concurrency 4       pai_lab" in out and "concurrency 4       tornado" in out
    assert "the in-process limit at batch 64" in out and "median overhead" in out
