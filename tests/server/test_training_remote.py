"""A job on a Dask cluster of separate processes (`dask scheduler` / `dask worker`), as on a real one."""

from __future__ import annotations

from tests.conftest import start_pai_server
from tests.fixtures.training import alive, pids_in, wait_for


def _cuda(job, role_index: str) -> str:
    lines = [x.line for x in job.log_lines(f"{job.id}-{role_index}")]
    return next(x for x in lines if x.startswith("cuda="))[5:]


def test_a_remote_style_cluster_runs_a_job_and_a_restart_ends_what_was_left(remote_dask, rank_script, tmp_path):
    root = tmp_path / "root"
    server = start_pai_server(root, "--dask-scheduler", remote_dask)
    restarted = None
    try:
        client = server.client()
        info = client.http.get("/cluster")
        assert info["scheduler_address"] == remote_dask
        assert [(w["cores"], w["gpus"]) for w in info["workers"]] == [(3, 2)]

        ws = client.workspace("default")
        job = ws.jobs.submit(
            name="remote",
            command=f"python {rank_script} --mode=flags --lines=3",
            workers=2,
            ps=1,
            worker_spec="cpu=1,gpu=1",
        )
        job.wait(timeout=120, poll=0.3)
        assert job.state == "Succeeded", job.reason
        assert [(p.name[len(job.id) + 1 :], p.state) for p in job.pods] == [
            ("worker-0", "Succeeded"),
            ("worker-1", "Succeeded"),
            ("ps-0", "Succeeded"),
        ]
        # each worker rank sees its own GPU; the parameter server none
        assert sorted([_cuda(job, "worker-0"), _cuda(job, "worker-1")]) == ["0", "1"]
        assert _cuda(job, "ps-0") == ""
        ps_pid = pids_in(job.logs("ps-0"))[0]
        assert not alive(ps_pid)  # ended once the workers finished

        # the control plane dies hard while a job runs; its successor marks the job and ends the rank
        sleeper = ws.jobs.submit(name="left", command=f"python {rank_script} --mode=sleep", workers=1)
        pid = wait_for(lambda: pids_in(sleeper.logs(0)), 60)[0]
        server.proc.kill()
        server.proc.wait(30)
        assert alive(pid)
        server.runtime_file.unlink()  # a killed server leaves it behind
        restarted = start_pai_server(root, "--dask-scheduler", remote_dask)
        again = restarted.client().workspace("default").jobs.get(sleeper.id)
        assert again.state == "Failed" and "the control plane restarted while the job was Running" in again.reason
        wait_for(lambda: not alive(pid), 30)

        # a clean shutdown ends the ranks of the jobs it supervises, even on an external cluster
        last = (
            restarted.client()
            .workspace("default")
            .jobs.submit(name="shutdown", command=f"python {rank_script} --mode=sleep", workers=1)
        )
        pid = wait_for(lambda: pids_in(last.logs(0)), 60)[0]
        assert restarted.stop() == 0
        assert not alive(pid)
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
