"""The scale-out benchmark still runs end to end (a stdlib stand-in job on one host, then on two)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import netns_hosts


def test_scale_out_benchmark_smoke():
    why = netns_hosts.unavailable()
    if why:
        pytest.skip(why)
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "scale_out.py"
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    out = done.stdout
    one = re.search(r"run 1: one host +launch ([\d.]+) s, ([\d.]+) steps/s, .* ranks on (\S+) \[.*load average", out)
    two = re.search(r"run 1: two hosts launch ([\d.]+) s, ([\d.]+) steps/s, .* ranks on (\S+), (\S+) \[", out)
    assert one and two, out
    assert float(one[2]) > 0 and float(two[2]) > 0
    assert two[3] != two[4]  # two hosts: the ranks at two addresses
    ratio = float(re.search(r"run 1: two/one +launch [-+][\d.]+ s, steps/s ([\d.]+)x", out)[1])
    assert ratio == pytest.approx(float(two[2]) / float(one[2]), abs=2e-3)
