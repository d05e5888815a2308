"""The autoscaling benchmark still runs end to end (a Python processor, a few seconds of step load)."""

import subprocess
import sys
from pathlib import Path


def test_serving_autoscale_benchmark_smoke():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_autoscale.py"
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "step load 20 -> 80 -> 20 req/s" in out and "machine: " in out
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines() if line.startswith(("autoscale", "fixed"))}
    assert {"autoscale 1-8 (qps 14)", "fixed 1"} <= set(rows), out
    # the autoscaled service grew under the step: its scale events are listed
    assert "scale events ScaleUp 1->" in out, out
