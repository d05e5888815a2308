"""The rank runtime's pieces that need no cluster: the data sources a worker on another machine gets, and the
TensorFlow start-up lines kept out of job logs."""

from __future__ import annotations

import json
from pathlib import Path

from pai_lab.training import runtime


def test_a_worker_that_cannot_see_the_job_folder_writes_the_shipped_data_sources(tmp_path):
    sources = {"sources": [{"name": "task:t", "manifest": "0.manifest"}]}
    launch = {
        "job_id": "dlc-1",
        "data_file": str(tmp_path / "elsewhere" / "data" / "sources.json"),
        "data_files": {"sources.json": json.dumps(sources), "0.manifest": '{"data": {"source": "a"}}\n'},
    }
    path = runtime._data_file(launch, "dlc-1-worker-1", str(tmp_path / "worker"))
    assert path.startswith(str(tmp_path / "worker")) and json.loads(Path(path).read_text()) == sources
    assert (tmp_path / "worker" / "pai_jobs" / "dlc-1" / "dlc-1-worker-1" / "data" / "0.manifest").is_file()

    here = tmp_path / "here.json"
    here.write_text("{}")
    assert runtime._data_file({**launch, "data_file": str(here)}, "p", str(tmp_path)) == str(here)
    assert runtime._data_file({"job_id": "dlc-1"}, "p", str(tmp_path)) is None


def test_tensorflow_start_up_lines_are_recognised_and_real_messages_are_not():
    noise = [
        "I0000 00:00:1796520298.507028   13615 port.cc:153] oneDNN custom operations are on. You may see ...",
        "I0000 00:00:1796520298.507548   13615 cudart_stub.cc:31] Could not find cuda drivers on your machine",
        "E0000 00:00:1796520300.536766   13615 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
        "appropriate compiler flags.",
    ]
    kept = [
        "E0000 00:00:1796520300.536766   13615 collective_ops.cc:52] Collective op failed: peer is gone",
        "W0000 00:00:1796521795.485813    1902 dataset.cc:997] Input of GeneratorDatasetOp will not be optimized",
        "Epoch 1/3",
        "5/5 - 2s - loss: 2.2910 - accuracy: 0.1375",
    ]
    assert all(runtime._TF_STARTUP_NOISE.match(line) for line in noise)
    assert not any(runtime._TF_STARTUP_NOISE.match(line) for line in kept)


def test_a_worker_that_cannot_see_the_job_folder_writes_the_shipped_tables_file(tmp_path):
    tables = {"tables": [{"name": "t", "uri": "s3://b/t", "storage_options": {}}], "outputs": []}
    launch = {
        "job_id": "dlc-2",
        "tables_file": str(tmp_path / "elsewhere" / "data" / "tables.json"),
        "data_files": {"tables.json": json.dumps(tables)},
    }
    path = runtime._data_file(launch, "dlc-2-worker-0", str(tmp_path / "worker"), "tables_file")
    assert path.startswith(str(tmp_path / "worker")) and json.loads(Path(path).read_text()) == tables


PARENT = r"""
import os, subprocess, sys, time
from pai_lab.training.rank_process import _with_parent_death
argv = _with_parent_death([sys.executable, "-c", "import time; time.sleep(300)"], os.environ["PATH"], os.getcwd())
if argv is None:
    print("no setpriv", flush=True)
    sys.exit(0)
child = subprocess.Popen(argv, start_new_session=True)  # no preexec_fn: started with vfork
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_rank_started_through_setpriv_is_itself_and_dies_with_the_process_that_started_it():
    import os
    import subprocess
    import sys

    import psutil
    import pytest

    from tests.fixtures.training import alive, wait_for

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env)
    try:
        first = parent.stdout.readline().strip()  # type: ignore[union-attr]
        if first == "no setpriv":
            pytest.skip("no util-linux setpriv with --pdeathsig here: ranks start with preexec_fn")
        pid = int(first)
        # setpriv execs the command: the pid the runtime holds is the command's own
        wait_for(lambda: psutil.Process(pid).cmdline()[:2] == [sys.executable, "-c"], 30, 0.05)
        assert alive(pid)
    finally:
        parent.kill()
        parent.wait(30)
    wait_for(lambda: not alive(pid), 30, 0.1)  # its parent died: so did it (PR_SET_PDEATHSIG)
    # a program that is not on PATH is left to Popen, which names it as it always has
    from pai_lab.training.rank_process import _with_parent_death

    assert _with_parent_death(["no_such_program_here"], os.environ["PATH"], os.getcwd()) is None


def test_a_relative_command_is_found_as_the_rank_finds_it_in_its_own_folder_and_path(tmp_path, monkeypatch):
    import os
    import shutil

    import pytest

    from pai_lab.training.rank_process import _with_parent_death

    if shutil.which("setpriv") is None:
        pytest.skip("no util-linux setpriv here: ranks start with preexec_fn")
    rank_dir = tmp_path / "rank"
    (rank_dir / "bin").mkdir(parents=True)
    for script in (rank_dir / "train.sh", rank_dir / "bin" / "fit"):
        script.write_text("#!/bin/sh\necho ran\n")
        script.chmod(0o755)
    worker_dir = tmp_path / "worker"  # the worker's own folder has neither
    worker_dir.mkdir()
    monkeypatch.chdir(worker_dir)
    wrapped = _with_parent_death(["./train.sh", "--x"], "/usr/bin:/bin", str(rank_dir))
    assert wrapped is not None and wrapped[-2:] == ["./train.sh", "--x"] and "--pdeathsig" in wrapped
    assert _with_parent_death(["fit"], "bin" + os.pathsep + "/usr/bin", str(rank_dir)) is not None  # PATH's bin/
    assert _with_parent_death(["./train.sh"], "/usr/bin", str(worker_dir)) is None  # not in that rank's folder
    # and the other way round: a script only the worker's folder has is not the rank's
    (worker_dir / "only_here.sh").write_text("#!/bin/sh\n")
    (worker_dir / "only_here.sh").chmod(0o755)
    assert _with_parent_death(["./only_here.sh"], "/usr/bin", str(rank_dir)) is None
