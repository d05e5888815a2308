"""The v2 binary benchmark still runs end to end (tiny model, one-second loads), this tree's gateway beside
the committed revision's, each figure with the CPU per request of the gateway and of its instance."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]


def test_serving_binary_benchmark_smoke():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "serving_binary.py"), "--smoke", "--against", "HEAD"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "load average" in out.splitlines()[0] and "in-process limit at batch 64" in out
    for name in ("before", "this"):
        line = next(x for x in out.splitlines() if x.startswith(f"median  {name}"))
        assert "errors 0" in line and "CPU per request: gateway" in line and "instance" in line, line
        gateway_ms = float(line.split("gateway ")[1].split(" ms")[0])
        assert gateway_ms > 0, line  # the gateway's own process was read, not some other
    assert "this / before (HEAD): samples/s" in out
