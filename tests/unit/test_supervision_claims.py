"""A job's supervisor claim, read by another control plane over the same store: a live process of this host
keeps its jobs; a process that ended, a missing or damaged claim and a reused process id do not. A pipeline
run's claim in its row: the same, and one of another host holds while its lease runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta

import psutil

from pai_lab.supervision import CLAIM, claim, lapsed, supervised_elsewhere, this_claim

CLAIMER = "import sys\nfrom pai_lab.supervision import claim\nclaim(sys.argv[1])\nprint('claimed', flush=True)\n"


def test_a_claim_holds_while_its_process_runs_and_lapses_when_it_ends(tmp_path):
    job_dir = tmp_path / "jobs" / "dlc-1"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLAIMER + "sys.stdin.read()\n", str(job_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "claimed"
        assert json.loads((job_dir / CLAIM).read_text())["pid"] == proc.pid
        assert supervised_elsewhere(job_dir)
        assert supervised_elsewhere(str(job_dir))
    finally:
        proc.communicate("")  # it reads stdin to its end, then exits
    assert not supervised_elsewhere(job_dir)


def test_no_claim_a_damaged_one_or_a_reused_process_id_is_nobodys(tmp_path):
    assert not supervised_elsewhere(None)
    assert not supervised_elsewhere(tmp_path / "never-claimed")
    (tmp_path / CLAIM).write_text("{not json")
    assert not supervised_elsewhere(tmp_path)
    claim(tmp_path)  # this very process is not another control plane: its own jobs are its own
    assert not supervised_elsewhere(tmp_path)
    mine = json.loads((tmp_path / CLAIM).read_text())
    parent = psutil.Process(os.getppid())  # a live process of this host other than this one
    held = {**mine, "pid": parent.pid, "started": parent.create_time()}
    (tmp_path / CLAIM).write_text(json.dumps(held))
    assert supervised_elsewhere(tmp_path)
    (tmp_path / CLAIM).write_text(json.dumps({**held, "started": held["started"] - 3600}))
    assert not supervised_elsewhere(tmp_path)  # the same id, but a process that started an hour later
    (tmp_path / CLAIM).write_text(json.dumps({**held, "host": "another-host.example"}))
    assert supervised_elsewhere(tmp_path)  # only that host can tell: left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == [CLAIM]  # the claim is written in place, no leftovers


def test_a_claim_in_a_row_lapses_when_its_process_ends_or_its_lease_of_another_host_runs_out():
    now = datetime(2030, 1, 1, 12, 0, 0)
    later, earlier = now + timedelta(seconds=30), now - timedelta(seconds=1)
    assert lapsed("", later, now) and lapsed("{not json", later, now)  # none, or not a claim: nobody holds it
    assert not lapsed(this_claim(), earlier, now)  # this live process: held whatever its lease says
    parent = psutil.Process(os.getppid())
    other = {"host": socket.gethostname(), "pid": parent.pid, "started": parent.create_time()}
    assert not lapsed(json.dumps(other), None, now)
    assert lapsed(json.dumps({**other, "started": other["started"] - 3600}), later, now)  # a reused id
    elsewhere = json.dumps({**other, "host": "another-host.example"})
    assert not lapsed(elsewhere, later, now)  # another host's: held while its lease runs
    assert lapsed(elsewhere, earlier, now) and lapsed(elsewhere, None, now)
