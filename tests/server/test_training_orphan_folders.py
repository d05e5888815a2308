"""A control plane that died between making a job's folder and writing its row left a folder no job owns;
the next start removes it, but never a folder a job owns, one younger than the grace period, one whose id a
live process carries, or a link."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import start_pai_server
from tests.fixtures.training import wait_for

HOURS_AGO = time.time() - 2 * 3600


def _age(folder: Path) -> None:
    """As if last written two hours ago (past the grace period)."""
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (HOURS_AGO, HOURS_AGO), follow_symlinks=False)


def _leftover(jobs: Path, name: str, aged: bool) -> Path:
    folder = jobs / name
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "train.py").write_text("print('code')\n")
    if aged:
        _age(folder)
    return folder


def test_job_folders_without_a_job_are_removed_at_start_up(tmp_path_factory):
    root = tmp_path_factory.mktemp("orphans") / "root"
    server = start_pai_server(root)
    try:
        job = server.client().workspace("default").jobs.submit(name="kept", workers=1, command="python -c pass")
        job.wait(timeout=180, poll=0.3)
        assert job.state == "Succeeded", job.reason
    finally:
        server.stop()
    jobs = root / ".pai_lab" / "jobs"
    owned = jobs / job.id
    _age(owned)  # a job's folder stays however old: its row owns it
    old = _leftover(jobs, "dlc-20200101000000-orphaned", aged=True)
    fresh = _leftover(jobs, "dlc-20200101000000-justmade", aged=False)
    busy = _leftover(jobs, "dlc-20200101000000-stillbusy", aged=True)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "data.txt").write_text("not the server's")
    link = jobs / "dlc-20200101000000-alink"
    link.symlink_to(elsewhere, target_is_directory=True)
    os.utime(link, (HOURS_AGO, HOURS_AGO), follow_symlinks=False)
    # a process that carries the busy folder's job id, as a rank's processes do
    carrier = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, "PAI_LAB_JOB_ID": busy.name},
    )
    server = start_pai_server(root)
    try:
        wait_for(lambda: not old.exists(), timeout=60)
        assert owned.is_dir()
        assert (fresh / "code" / "train.py").exists()
        assert (busy / "code" / "train.py").exists()
        assert link.is_symlink() and (elsewhere / "data.txt").read_text() == "not the server's"
        assert server.client().workspace("default").jobs.get(job.id).state == "Succeeded"
    finally:
        carrier.kill()
        carrier.wait(10)
        server.stop()
