"""The serving benchmark still runs end to end (tiny model, one-second loads), with wrk generating the
HTTP loads and, where wrk is missing, with the Python client after saying so. The two runs start together
(each on ports of its own): their fixed-length loads overlap instead of following each other."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_gateway.py"


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """generator -> (the running `serving_gateway.py --smoke`, its stdout and stderr files); wrk's only where
    wrk is installed. Files rather than pipes: neither run waits on a full pipe while the other is read."""
    folder = tmp_path_factory.mktemp("serving-bench")
    runs = {}
    for generator in ("wrk", "python"):
        if generator == "wrk" and not shutil.which("wrk"):
            continue
        env = dict(os.environ)
        if generator == "python":
            env["PAI_LAB_BENCH_WRK"] = "wrk-that-is-not-installed"
        out, err = folder / f"{generator}.out", folder / f"{generator}.err"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            proc = subprocess.Popen([sys.executable, str(SCRIPT), "--smoke"], stdout=stdout, stderr=stderr, env=env)
        runs[generator] = (proc, out, err)
    yield runs
    for proc, _, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_serving_benchmark_smoke(smoke_runs, generator):
    if generator not in smoke_runs:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    proc, stdout, stderr = smoke_runs[generator]
    assert proc.wait(timeout=280) == 0, stderr.read_text()[-3000:]
    out = stdout.read_text()
    assert "concurrency 4       pai_lab" in out and "concurrency 4       tornado" in out
    assert "concurrency 4       pai_lab TF REST" in out and "TF Serving REST (instances) / EAS JSON" in out
    assert "the in-process limit at batch 64" in out and "median overhead" in out
    assert "pai_lab v2 binary" in out and "load average" in out.splitlines()[0]
    assert "event loops: the pai_lab gateway on " in out  # said beside the figures, whichever it is
    if generator == "wrk":
        assert "load generator: wrk" in out and "(load " in out and "wrk " in out
        assert "v2 binary, Python client" in out and "python " in out  # that client's own CPU is shown
    else:
        assert "wrk is not installed" in out and "wrk " not in out.split("load generator", 1)[1].split("\n", 1)[1]
