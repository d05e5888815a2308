"""The GPU check runs end to end on a machine without a GPU: it says so and prints the CPU's figures."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf


def test_gpu_check_smoke_names_the_card_or_its_absence_and_prints_every_figure():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
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
