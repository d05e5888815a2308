"""TFJob's default success policy on a real `pai server` and its Dask LocalCluster: a job with a chief
succeeds when its chief exits 0 and the ranks still serving are ended; a rank failing first still
fails the job."""

from __future__ import annotations

import textwrap

import pytest

from tests.fixtures.training import pids_in, processes_of, wait_for

# the chief ends once every other rank serves (a file per rank under checkpointDir, which ranks may write); the others
# serve until they are ended, or, with --fail, worker 0 fails while the chief still waits
SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    role, index = os.environ["PAI_LAB_ROLE"], os.environ["PAI_LAB_POD"].rsplit("-", 1)[1]
    marks = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--checkpointDir="))
    print(f"pid={os.getpid()} role={role}", flush=True)
    if role == "chief":
        while len(os.listdir(marks)) < int(sys.argv[1]) and "--fail" not in sys.argv:
            time.sleep(0.1)
        if "--fail" in sys.argv:
            time.sleep(600)
        print("coordinated", flush=True)
        sys.exit(0)
    if "--fail" in sys.argv and role == "worker" and index == "0":
        sys.exit(3)
    open(os.path.join(marks, f"{role}-{index}"), "w").close()
    print("serving", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def ws(live_server):
    return live_server.client().workspace("default")


@pytest.fixture
def script(tmp_path):
    (tmp_path / "marks").mkdir()
    path = tmp_path / "policy.py"
    path.write_text(SCRIPT)
    return path


def _states(job) -> dict[str, str]:
    return {"-".join(p.name.rsplit("-", 2)[-2:]): p.state for p in job.pods}


def test_a_job_with_a_chief_succeeds_with_its_chief_and_the_serving_ranks_are_ended(ws, script):
    job = ws.jobs.submit(
        name="chief-policy",
        command=f"python {script} 1",
        checkpointDir=str(script.parent / "marks"),
        workers=1,
        chief=True,
    )
    job.wait(timeout=180, poll=0.3)
    assert job.state == "Succeeded", job.reason
    assert job.reason == (
        "chief-0 exited with code 0: a job with a chief succeeds with its chief; "
        "the ranks still running were ended: worker-0"
    )
    assert job.history[-1].state == "Succeeded" and job.history[-1].reason == job.reason
    # the ranks the platform ended are not failures
    assert _states(job) == {"chief-0": "Succeeded", "worker-0": "Succeeded"}
    assert "serving" in job.logs(f"{job.id}-worker-0") and "coordinated" in job.logs(f"{job.id}-chief-0")
    assert len(pids_in(job.logs(None))) == 2 and not processes_of(job.id)


def test_a_worker_failing_before_the_chief_ends_still_fails_a_job_with_a_chief(ws, script):
    job = ws.jobs.submit(
        name="chief-worker-fails",
        command=f"python {script} 1 --fail",
        checkpointDir=str(script.parent / "marks"),
        workers=1,
        chief=True,
    )
    wait_for(lambda: job.refresh().state in ("Succeeded", "Failed", "Stopped"), timeout=180)
    assert job.state == "Failed"
    assert job.reason.startswith(f"{job.id}-worker-0 exited with code 3"), job.reason
    states = _states(job)
    assert states["worker-0"] == "Failed" and states["chief-0"] == "Stopped"
    assert "coordinated" not in job.logs(f"{job.id}-chief-0") and not processes_of(job.id)
