"""The README runs the suite in parallel workers (pytest-xdist, ``--dist loadgroup``): a module whose tests
share a module-scoped fixture (a JupyterHub, a cluster of hosts, a trained model) must run on one worker,
so that the fixture starts once. pytest 9.2's node ids drop the group pytest-xdist 3.8 adds to them, which
spread such a module over every worker; this runs a module like that in parallel and counts its fixture's
starts."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

MODULE = """
import os

import pytest


@pytest.fixture(scope="module")
def shared():
    with open(os.environ["STARTS"], "a") as starts:
        starts.write(f"{os.getpid()}\\n")


@pytest.mark.parametrize("n", range(6))
def test_uses_the_shared_fixture(shared, n):
    pass


@pytest.mark.parametrize("n", range(6))
def test_alone(n):
    pass
"""


def test_a_module_sharing_a_module_fixture_runs_on_one_worker_and_starts_it_once(tmp_path):
    (tmp_path / "test_grouped.py").write_text(MODULE)
    starts = tmp_path / "starts.txt"
    argv = [sys.executable, "-m", "pytest", "-n", "3", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    argv += ["-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path / "test_grouped.py")]
    done = subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, "STARTS": str(starts), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "12 passed" in done.stdout
    assert len(starts.read_text().split()) == 1, done.stdout[-2000:]
