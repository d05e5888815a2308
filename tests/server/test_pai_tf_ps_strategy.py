"""enableDynamicCluster on a real tf.distribute ParameterServerStrategy job (1 ps, a chief that
coordinates, 2 workers): a worker killed mid-job rejoins and the job succeeds when its chief does;
without the flag the same kill fails the job."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
from pathlib import Path

import pytest

from pai_lab.training.schemas import TERMINAL_STATES
from tests.conftest import start_pai_server
from tests.fixtures.training import dask_processes, pids_in, wait_for

pytestmark = pytest.mark.tf

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "training" / "ps_strategy_train.py"
ROUNDS, PER_ROUND = 12, 25


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A `pai server` on a Dask worker with a slot for each of the job's four ranks."""
    with dask_processes(tmp_path_factory.mktemp("dask"), nthreads=4) as address:
        server = start_pai_server(tmp_path_factory.mktemp("root"), "--dask-scheduler", address)
        try:
            yield server.client().workspace("default")
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def _no_job_left_running(ws):
    """A job a failed test left running holds the cluster's four slots: stop it, so the next test can run."""
    yield
    for info in ws.jobs.list():
        if info.state not in TERMINAL_STATES:
            ws.jobs.get(info.id).stop()


def _submit(ws, tmp_path, dynamic: bool, rounds: int = ROUNDS):
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(SCRIPT, code / SCRIPT.name)
    return ws.jobs.submit(
        "ps-dynamic" if dynamic else "ps-static",
        f"python {SCRIPT.name} --rounds={rounds} --steps_per_round={PER_ROUND} --pause=0.5",
        workers=2,
        ps=1,
        chief=True,
        code_source=str(code),
        checkpointDir=str(tmp_path / "ckpt"),
        enableDynamicCluster=dynamic,
    )


def _wait(job) -> None:
    """Wait for the job's end; a job that does not end fails the test with what each rank logged."""
    try:
        job.wait(timeout=240, poll=0.5)
    except TimeoutError as exc:
        ranks = "\n".join(f"--- {p.name} {p.state}:\n{job.logs(p.name)[-3000:]}" for p in job.refresh().pods)
        raise AssertionError(f"{exc}; history: {[h.reason for h in job.history]}\n{ranks}") from None


def _kill_worker_1_mid_job(job) -> int:
    """Once the coordinator finished a round on both workers, SIGKILL worker 1; its pid."""
    try:
        wait_for(
            lambda: "round 2:" in job.logs("chief-0") or job.refresh().state not in ("Creating", "Queuing", "Running"),
            timeout=150,
        )
    finally:
        job.refresh()
    assert job.state == "Running", f"{job.state}: {job.reason}\n" + "\n".join(
        f"{p.name}: {job.logs(p.name)[-1500:]}" for p in job.pods
    )
    pid = pids_in(job.logs("worker-1"))[0]
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_killed_worker_rejoins_a_dynamic_ps_strategy_job_and_it_succeeds(ws, tmp_path):
    job = _submit(ws, tmp_path, dynamic=True)
    killed = _kill_worker_1_mid_job(job)
    _wait(job)
    chief = job.logs("chief-0")
    assert job.state == "Succeeded", job.reason + "\n" + chief[-2000:]
    # the job succeeded with its chief; the workers and the ps, which serve until ended, were ended
    assert job.reason == (
        "chief-0 exited with code 0: a job with a chief succeeds with its chief; "
        "the ranks still running were ended: worker-0, worker-1, ps-0"
    )
    assert [p.state for p in job.pods] == ["Succeeded"] * 4
    reasons = [h.reason for h in job.history]
    assert any(r.startswith("worker-1 left the job (exit code -9); it rejoins") for r in reasons), reasons
    assert "worker-1 rejoined the job" in reasons
    pids = pids_in(job.logs("worker-1"))
    assert pids[0] == killed and len(pids) == 2  # its first run and the one that rejoined
    # the coordinator ran every round (steps a lost worker held ran again elsewhere) and learned y = 3x + 1
    assert f"round {ROUNDS}:" in chief
    trained = re.search(r"trained: steps=(\d+) weight=([\d.-]+) bias=([\d.-]+)", chief)
    assert trained and int(trained[1]) >= ROUNDS * PER_ROUND, chief[-2000:]
    assert abs(float(trained[2]) - 3) < 0.5 and abs(float(trained[3]) - 1) < 0.5
    assert list((tmp_path / "ckpt").glob("ckpt-*.index"))  # checkpoints in -DcheckpointDir
    # the ranks listened below the kernel's ephemeral ports, where no outgoing connection takes a rank's port
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(p.port < ephemeral_low for p in job.pods), [p.port for p in job.pods]


def test_without_dynamic_cluster_the_same_kill_fails_the_ps_strategy_job(ws, tmp_path):
    job = _submit(ws, tmp_path, dynamic=False)
    _kill_worker_1_mid_job(job)
    _wait(job)
    assert job.state == "Failed"
    assert job.reason.startswith(f"{job.id}-worker-1 exited with code -9"), job.reason
    assert f"round {ROUNDS}:" not in job.logs("chief-0")


def _bound(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("", port))
    except OSError:
        return False
    return True


def test_a_worker_whose_port_another_program_holds_rejoins_once_the_port_is_free(ws, tmp_path):
    job = _submit(ws, tmp_path, dynamic=True, rounds=ROUNDS * 10)  # the chief still runs when worker-1 is back
    _kill_worker_1_mid_job(job)
    port = next(p.port for p in job.pods if p.name.endswith("-worker-1"))
    squatter = socket.socket()  # another program listening at the killed worker's address
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        wait_for(lambda: _bound(squatter, port), timeout=2, every=0.001)  # once the killed process is gone
        squatter.listen()
        wait_for(lambda: f"cannot listen at port {port} again" in job.logs("worker-1"), timeout=60)
    finally:
        squatter.close()

    def rejoined_again() -> bool:
        reasons = [h.reason for h in job.refresh().history]
        second = [i for i, r in enumerate(reasons) if r.startswith("worker-1 left the job (exit code 1); it rejoins")]
        return bool(second) and "worker-1 rejoined the job" in reasons[second[0] :]

    # the rank refused to serve at another address, left with that reason and came back at its own
    wait_for(rejoined_again, timeout=90)
    reasons = [h.reason for h in job.history]
    assert any(r.endswith("it rejoins (enableDynamicCluster, 2 of 3)") for r in reasons), reasons
    wait_for(lambda: len(pids_in(job.logs("worker-1"))) == 2, timeout=60)  # its process started again
    # How soon the coordinator reconnects after the squatter is gRPC's reconnect backoff, not ours: the
    # job is stopped here, and a job that goes on to succeed is the test above.
    job.stop()
    _wait(job)
    assert job.state in ("Stopped", "Succeeded"), job.reason
