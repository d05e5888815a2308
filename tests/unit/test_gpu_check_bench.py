"""The GPU check runs end to end on a machine without a GPU: it says so and prints the CPU's figures. Its
last part is the data-parallel benchmark's smoke run (a tiny model, 1 rank then 2 ranks), checked from the
same run's output so that TensorFlow starts once for both."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def gpu_check_smoke() -> str:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_gpu_check_smoke_names_the_card_or_its_absence_and_prints_every_figure(gpu_check_smoke):
    out = gpu_check_smoke
    gpu = re.search(r"^GPU: (.+)$", out, re.MULTILINE)[1]
    if shutil.which("nvidia-smi") is None:
        assert gpu.startswith("no GPU"), gpu
    example = re.search(r"example cifar_pai.py: 1 epoch\(s\) of 80 images in [\d.]+ s = ([\d.]+) images/s", out)
    assert example and float(example[1]) > 0
    rates = dict(
        re.findall(
            r"^strategy (no strategy|MirroredStrategy, 1 device|MWMS, 1 rank) +([\d.]+) samples/s", out, re.MULTILINE
        )
    )
    assert set(rates) == {"no strategy", "MirroredStrategy, 1 device", "MWMS, 1 rank"}
    assert all(float(v) > 0 for v in rates.values())
    if "no GPU" in gpu:
        assert out.count("device:CPU:0); ") == 3  # the steps ran where the check says they did
    assert re.search(r"run 1: speedup S\(2\) = [\d.]+, efficiency E\(2\) = [\d.]+", out)
    assert out.count("load average") >= 6  # every figure beside the machine's load


def test_data_parallel_benchmark_smoke(gpu_check_smoke):
    """benchmarks/data_parallel.py --smoke, as the GPU check runs it."""
    out = gpu_check_smoke.split("data_parallel.py:", 1)[1]
    one = float(re.search(r"run 1: 1 rank +([\d.]+) steps/s", out)[1])
    two = float(re.search(r"run 1: 2 ranks +([\d.]+) steps/s", out)[1])
    efficiency = float(re.search(r"efficiency E\(2\) = ([\d.]+)", out)[1])
    assert one > 0 and two > 0
    assert efficiency == pytest.approx(two / (2 * one), abs=2e-3)
    assert "global batch 16" in out and "CPUs, load average" in out
