"""The serving benchmark still runs end to end (tiny model, one-second loads), with wrk generating the
HTTP loads and, where wrk is missing, with the Python client after saying so."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_serving_benchmark_smoke(generator):
    if generator == "wrk" and not shutil.which("wrk"):
        pytest.skip("wrk is not installed (apt-get install wrk)")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_gateway.py"
    env = dict(os.environ)
    if generator == "python":
        env["PAI_LAB_BENCH_WRK"] = "wrk-that-is-not-installed"
    done = subprocess.run(
        [sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=280, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "concurrency 4       pai_lab" in out and "concurrency 4       tornado" in out
    assert "concurrency 4       pai_lab TF REST" in out and "TF Serving REST (instances) / EAS JSON" in out
    assert "the in-process limit at batch 64" in out and "median overhead" in out
    assert "pai_lab v2 binary" in out and "load average" in out.splitlines()[0]
    if generator == "wrk":
        assert "load generator: wrk" in out and "(load " in out and "wrk " in out
        assert "v2 binary, Python client" in out and "python " in out  # that client's own CPU is shown
    else:
        assert "wrk is not installed" in out and "wrk " not in out.split("load generator", 1)[1].split("\n", 1)[1]
