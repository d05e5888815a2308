"""A job's (run's) supervisor claim, read by another control plane over the same store: a live process of
this host keeps its jobs; a process that ended, a missing or damaged claim and a reused process id do not."""

from __future__ import annotations

import json
import subprocess
import sys

from pai_lab.supervision import CLAIM, claim, supervised_elsewhere

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
    claim(tmp_path)  # this process: alive, so its jobs are kept
    assert supervised_elsewhere(tmp_path)
    held = json.loads((tmp_path / CLAIM).read_text())
    (tmp_path / CLAIM).write_text(json.dumps({**held, "started": held["started"] - 3600}))
    assert not supervised_elsewhere(tmp_path)  # the same id, but a process that started an hour later
    (tmp_path / CLAIM).write_text(json.dumps({**held, "host": "another-host.example"}))
    assert supervised_elsewhere(tmp_path)  # only that host can tell: left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == [CLAIM]  # the claim is written in place, no leftovers
