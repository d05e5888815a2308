"""The PAI-TF command on a real `pai server` and Dask: as the manual types it (`pai -name ... -D...`),
over REST through the Python client, with its step watchdog and its dynamic cluster."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import tarfile

import pytest

from pai_lab.errors import BadInput, Conflict
from tests.conftest import start_pai_server
from tests.fixtures.training import pids_in, processes_of, wait_for

ENTRY = r"""
import argparse, json, os, sys, time
from util import GREETING
parser = argparse.ArgumentParser()
parser.add_argument("--job_name", default="worker")
parser.add_argument("--task_index", type=int, default=0)
parser.add_argument("--checkpointDir", default="")
parser.add_argument("--mode", default="flags")
parser.add_argument("--steps", type=int, default=3)
args, _ = parser.parse_known_args()
print(GREETING, flush=True)
print(f"a warning of worker {args.task_index}, on stderr", file=sys.stderr, flush=True)
print("argv=" + json.dumps(sys.argv[1:]), flush=True)
print("cwd=" + os.getcwd(), flush=True)
print(f"pid={os.getpid()}", flush=True)
print("cuda=" + os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"), flush=True)
if args.job_name == "ps":
    while True:  # a parameter server never ends by itself
        time.sleep(1)
import pai_lab.training as pai
if args.mode == "stall":
    pai.report(step=1, loss=1.0)
    while True:  # alive and talking, but no step ever again
        print("still loading...", flush=True)
        time.sleep(0.5)
for step in range(args.steps):
    pai.report(step=step, loss=1.0 / (step + 1))
    time.sleep(0.5)
if args.checkpointDir and args.task_index == 0:
    os.makedirs(args.checkpointDir, exist_ok=True)
    open(os.path.join(args.checkpointDir, "model.ckpt"), "w").write("3")
print("done", flush=True)
"""


def _archive(folder, name="code.tar.gz"):
    path = folder / name
    with tarfile.open(path, "w:gz") as tar:
        for member, text in (("pkg/main.py", ENTRY), ("pkg/util.py", "GREETING = 'hello from the archive'\n")):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def ws(live_server):
    return live_server.client().workspace("default")


def test_the_manuals_command_runs_a_tarball_on_the_cluster_json_roles(cli, ws, tmp_path):
    archive = _archive(tmp_path)
    checkpoints = tmp_path / "ckpt"
    rc, out, err = cli(
        "-name",
        "tensorflow1120_ext",
        "-project",
        "algo_public",
        f"-Dscript=file://{archive}",
        "-DentryFile=pkg/main.py",
        '-Dcluster={"worker":{"count":2,"cpu":100,"memory":2000}}',
        f"-DcheckpointDir='{checkpoints}'",
        "-DossHost=oss-cn-beijing-internal.aliyuncs.com",
        "-DuserDefinedParameters=--steps=2",
        ";",
    )
    assert rc == 0, out + err
    job_id = out.split("JobId: ", 1)[1].split()[0]
    # as PAI's console shows a job: its states and timestamped ps_job/worker_job lines
    assert "[1] train: running" in out and out.rstrip().endswith("[1] train: succeeded")
    assert re.search(r"^\[1\] train: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d worker_job:\d/\d/2\[\d+%\]$", out, re.MULTILINE)
    assert "[WARN] -project" in out and "[WARN] -DossHost" in out
    job = ws.jobs.get(job_id)
    assert (job.workers, job.ps, job.spec.worker_spec) == (2, 0, "cpu=1,memory=2000MiB,gpu=0")
    assert job.spec.command == "python pkg/main.py" and job.name == "main"
    for index in (0, 1):
        lines = [x.line for x in job.log_lines(f"{job_id}-worker-{index}")]
        assert "hello from the archive" in lines  # the archive's own module, next to its entry
        argv = json.loads(next(x for x in lines if x.startswith("argv="))[5:])
        assert f"--checkpointDir={checkpoints}" in argv and f"--task_index={index}" in argv
        assert argv[-1] == "--steps=2"
        assert next(x for x in lines if x.startswith("cwd=")).endswith(f"{job_id}/code")
    assert (checkpoints / "model.ckpt").read_text() == "3"
    # each pod's stderr is kept apart from its stdout, as PAI's StdOut and StdErr pages show them
    errors = job.log_lines(1, stream="stderr")
    assert [(x.line, x.stream) for x in errors] == [("a warning of worker 1, on stderr", "stderr")]
    assert "hello from the archive" in job.logs(1, stream="stdout")
    assert "on stderr" not in job.logs(1, stream="stdout") and "on stderr" in job.logs(1)
    panel = job.monitor()  # the notebook's job panel shows either stream, or both
    panel.pod.value = f"{job_id}-worker-1"
    panel.stream.value = "stderr"
    assert panel.log_view.value == "a warning of worker 1, on stderr"
    panel.stream.value = "both"
    assert "hello from the archive" in panel.log_view.value and "on stderr" in panel.log_view.value
    rc, out, _err = cli("dlc", "logs", job_id, "worker-0", "--stream", "stderr")
    assert rc == 0 and out.strip().endswith("a warning of worker 0, on stderr") and len(out.strip().splitlines()) == 1
    rc, _out, err = cli("dlc", "logs", job_id, "worker-0", "--stream", "both")
    assert rc == 2 and "--stream" in err


def test_bad_commands_are_refused_naming_the_flag(cli, ws, tmp_path):
    archive = _archive(tmp_path)
    rc, _out, err = cli("-name", "tensorflow1120_ext", f"-Dscript={archive}", "-DentryFile=pkg/nothere.py")
    assert rc == 2 and "-DentryFile 'pkg/nothere.py' is not in -Dscript" in err and "(field: entryFile)" in err
    rc, _out, err = cli("-name", "tensorflow1120_ext", f"-Dscript={archive}")
    assert rc == 2 and "-DentryFile is required" in err
    rc, _out, err = cli("-name", "tensorflow1120_ext", f"-Dscript={archive}", "-DentryFile=pkg/main.py", "-Dcluster={x")
    assert rc == 2 and "-Dcluster is not JSON" in err
    rc, _out, err = cli("-name", "pytorch", f"-Dscript={archive}", "-DentryFile=pkg/main.py")
    assert rc == 2 and "the PAI-TF algorithms are" in err
    # over REST: a GPU this cluster has none of is a 409 that names the flag; 0 runs on CPU
    with pytest.raises(Conflict) as caught:
        ws.jobs.pai_tf(str(archive), entryFile="pkg/main.py", gpuRequired=100)
    assert caught.value.field == "gpuRequired" and "no worker of this cluster has one" in caught.value.message
    with pytest.raises(BadInput) as refused:
        ws.jobs.pai_tf(str(tmp_path / "missing.py"))
    assert refused.value.field == "script"
    # the body as JSON types too: the cluster as an object, numbers and booleans as themselves
    body = {
        "script": str(archive),
        "entryFile": "pkg/main.py",
        "cluster": {"worker": {"count": 1, "cpu": 100}},
        "gpuRequired": 0,
        "enableDynamicCluster": False,
        "maxHungTimeBeforeGCInSeconds": 60,
        "userDefinedParameters": "--steps=1",
    }
    with pytest.raises(BadInput) as refused:
        ws._post("/jobs/pai-tf", {**body, "cluster": {"worker": {"count": 1, "disk": 5}}})
    assert refused.value.field == "cluster" and "unknown key 'disk'" in refused.value.message
    job = ws.jobs.get(ws._post("/jobs/pai-tf", body)["id"])
    assert (job.spec.worker_spec, job.spec.maxHungTimeBeforeGCInSeconds) == ("cpu=1,memory=30000MiB,gpu=0", 60)
    job.wait(timeout=120, poll=0.3)
    assert job.state == "Succeeded", job.reason


def test_no_training_step_for_max_hung_time_fails_the_job_naming_the_flag(ws, tmp_path):
    archive = _archive(tmp_path)
    job = ws.jobs.pai_tf(
        str(archive),
        entryFile="pkg/main.py",
        cluster={"worker": {"count": 1}},
        maxHungTimeBeforeGCInSeconds=3,
        userDefinedParameters="--mode=stall",
    )
    job.wait(timeout=120, poll=0.3)
    assert job.state == "Failed"
    assert "no rank reported a training step for 3 s (-DmaxHungTimeBeforeGCInSeconds=3)" in job.reason
    # it kept printing: only steps count as progress once it had reported one
    assert sum("still loading" in x.line for x in job.log_lines(0)) >= 3
    assert not processes_of(job.id)


def test_a_worker_of_a_dynamic_ps_job_leaves_and_rejoins_and_the_job_succeeds(tmp_path, remote_dask):
    server = start_pai_server(tmp_path / "root", "--dask-scheduler", remote_dask)
    try:
        ws = server.client().workspace("default")
        archive = _archive(tmp_path)
        job = ws.jobs.pai_tf(
            str(archive),
            entryFile="pkg/main.py",
            cluster={"ps": {"count": 1, "cpu": 100}, "worker": {"count": 2, "cpu": 100}},
            enableDynamicCluster=True,
            userDefinedParameters="--steps=12",
        )
        pod = f"{job.id}-worker-1"
        first = wait_for(lambda: pids_in(job.logs("worker-1")), timeout=120)  # it runs, and has said so
        job.refresh()
        assert job.state == "Running" and job.spec.enableDynamicCluster
        assert sorted(p.gpus for p in job.pods if p.role == "worker") == [[0], [1]]  # one card each, as on PAI
        os.kill(first[0], signal.SIGKILL)
        job.wait(timeout=180, poll=0.3)
        assert job.state == "Succeeded", job.reason
        reasons = [h.reason for h in job.history]
        assert any(
            r.startswith("worker-1 left the job (exit code -9); it rejoins (enableDynamicCluster") for r in reasons
        )
        assert "worker-1 rejoined the job" in reasons
        lines = [x.line for x in job.log_lines(pod)]
        assert lines.count("hello from the archive") == 2 and lines[-1] == "done"  # its first run and its second
        assert {p.role: p.state for p in job.pods} == {"ps": "Succeeded", "worker": "Succeeded"}

        # a single-machine job's -DgpuRequired: cards placed on a worker that has them, and only those seen
        single = ws.jobs.pai_tf(
            str(archive), entryFile="pkg/main.py", gpuRequired=200, userDefinedParameters="--steps=1"
        )
        single.wait(timeout=120, poll=0.3)
        assert single.state == "Succeeded", single.reason
        assert [p.gpus for p in single.pods] == [[0, 1]] and "cuda=0,1" in single.logs(0)
    finally:
        server.stop()
