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
    # the service beside the job: in the gateway on one host, on the two workers' hosts on two
    local = re.search(r"run 1: one host +serving local: ([\d.]+) req/s, .* errors 0, instances on gateway \[", out)
    remote = re.search(
        r"run 1: two hosts serving workers: ([\d.]+) req/s, .* errors 0, instances on (\S+), (\S+) \[", out
    )
    assert local and remote, out
    assert float(local[1]) > 0 and float(remote[1]) > 0 and remote[2] != remote[3]
    assert ratio == pytest.approx(float(two[2]) / float(one[2]), abs=2e-3)
