"""Jobs on a real `pai server` and its Dask LocalCluster, driven through the Python client and the CLI."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tests.fixtures.training import pids_in, processes_of, wait_for

TERMINAL = ("Succeeded", "Failed", "Stopped")


@pytest.fixture
def ws(live_server):
    return live_server.client().workspace("default")


def _finished(job, timeout=120):
    return job.wait(timeout=timeout, poll=0.3)


def test_flags_reach_every_rank_and_logs_are_complete_and_ordered_per_pod(ws, rank_script):
    job = ws.jobs.submit(
        name="flags",
        command=f"python {rank_script} --mode=flags --lines=300",
        workers=2,
        checkpointDir=str(rank_script.parent / "ckpt"),
        hyperParameters="",
        userDefinedParameters="--lr=0.5",
    )
    assert job.id.startswith("dlc-") and len(job.id.split("-")[1]) == 14
    _finished(job)
    assert job.state == "Succeeded", job.reason
    assert [p.state for p in job.pods] == ["Succeeded", "Succeeded"]
    assert job.progress == "worker_job:0/2/2[100%]"
    hosts = []
    for index in (0, 1):
        pod = f"{job.id}-worker-{index}"
        lines = [x.line for x in job.log_lines(pod)]
        assert [x for x in lines if x.startswith("line-")] == [f"line-{i:05d}" for i in range(300)]
        argv = json.loads(next(x for x in lines if x.startswith("argv="))[5:])
        tf_config = json.loads(next(x for x in lines if x.startswith("tf_config="))[10:])
        assert tf_config["task"] == {"type": "worker", "index": index}
        hosts.append(tf_config["cluster"]["worker"])
        assert argv[:2] == ["--mode=flags", "--lines=300"]
        assert "--job_name=worker" in argv and f"--task_index={index}" in argv
        assert "--ps_hosts=" in argv and f"--worker_hosts={','.join(tf_config['cluster']['worker'])}" in argv
        assert f"--checkpointDir={rank_script.parent / 'ckpt'}" in argv and "--buckets=" in argv
        assert argv[-1] == "--lr=0.5"
        assert f"pod={pod}" in lines
        # a rank threads like a process started by hand, not like its capped Dask worker
        assert f"omp={os.environ.get('OMP_NUM_THREADS', '<unset>')}" in lines
    assert hosts[0] == hosts[1] and len(set(hosts[0])) == 2  # one address per rank, free ports
    frame = job.metrics()
    assert sorted(frame["pod"].unique()) == [f"{job.id}-worker-0", f"{job.id}-worker-1"]
    assert list(frame[frame["pod"] == f"{job.id}-worker-0"]["step"]) == list(range(0, 300, 10))
    assert frame["loss"].iloc[0] == 1.0
    listed = ws.jobs.list()
    assert listed[0].id == job.id and listed[0].workers == 2 and listed[0].state == "Succeeded"


def test_a_failing_rank_fails_the_job_and_ends_the_other(ws, rank_script):
    job = ws.jobs.submit(name="fails", command=f"python {rank_script} --mode=fail", workers=2)
    _finished(job)
    assert job.state == "Failed"
    assert job.reason.startswith(f"{job.id}-worker-1 exited with code 3") and "boom" in job.reason
    states = {p.name.rsplit("-", 2)[-2] + p.name[-2:]: (p.state, p.exit_code) for p in job.pods}
    assert states["worker-1"] == ("Failed", 3) and states["worker-0"][0] == "Stopped"
    assert len(pids_in(job.logs(None))) == 2 and not processes_of(job.id)


def test_a_hung_rank_is_caught_by_the_watchdog_and_every_process_ends(ws, rank_script):
    job = ws.jobs.submit(
        name="hangs", command=f"python {rank_script} --mode=hang", workers=2, maxHungTimeBeforeGCInSeconds=3
    )
    _finished(job)
    assert job.state == "Failed"
    assert "no rank logged or reported a training step for 3 s (-DmaxHungTimeBeforeGCInSeconds=3)" in job.reason
    assert len(pids_in(job.logs(None))) == 2 and not processes_of(job.id)


def test_stop_ends_every_process_and_a_second_stop_warns(ws, rank_script, cli):
    job = ws.jobs.submit(name="sleeps", command=f"python {rank_script} --mode=sleep", workers=2)
    wait_for(lambda: len(pids_in(job.logs(None))) == 2, 60)
    assert sorted(processes_of(job.id)) == [f"{job.id}-worker-0", f"{job.id}-worker-1"]
    rc, out, err = cli("dlc", "stop", job.id, "--force")
    assert rc == 0 and out.strip() == f"[INFO] Job [{job.id}] has been stopped.", err
    assert job.refresh().state == "Stopped" and job.reason == "stopped by owner"
    states = [h.state for h in job.history]
    assert states[0] == "Creating" and "Running" in states and states[-2:] == ["Stopping", "Stopped"]
    assert not processes_of(job.id)
    rc, out, _ = cli("dlc", "stop", job.id, "--force")
    assert rc == 1
    assert out.strip() == (
        "[WARN] The job you are trying to stop is not in creating/running status, can not be stopped."
    )


def test_cli_submit_with_a_job_file_follows_the_job_and_shows_logs(cli, rank_script, tmp_path):
    job_file = tmp_path / "job_file.flags"
    job_file.write_text(f"name=from_file\nworkers=1\ncommand=python {rank_script} --mode=flags --lines=12\n")
    rc, out, err = cli("dlc", "submit", "tfjob", "--name=ignored", f"--job_file={job_file}")
    assert rc == 0, err
    job_id = out.split("| ")[3].split()[0]
    assert f"[Info] Job [{job_id}] is [Running]" in out
    assert out.rstrip().splitlines()[-2] == f"[Info] Job [{job_id}] is [Succeeded]"
    assert "worker_job:0/1/1[100%]" in out.splitlines()[-1]
    rc, out, _ = cli("dlc", "logs", job_id, f"{job_id}-worker-0", "--max_events_num", "2")
    assert rc == 0
    assert [line.split(" ", 1)[1] for line in out.strip().splitlines()] == ["line-00010", "line-00011"]
    assert out.startswith("20") and out.split(" ", 1)[0].endswith("Z")
    rc, out, _ = cli(
        "dlc", "logs", job_id, "worker-0", "--start_time", "2000-01-01T00:00:00Z", "--end_time", "2000-01-02T00:00:00Z"
    )
    assert rc == 0 and out == ""
    rc, out, _ = cli("dlc", "get", "job")
    assert rc == 0 and job_id in out and "from_file" in out and out.startswith("JobId")
    rc, out, _ = cli("dlc", "get", "job", job_id)
    assert rc == 0 and f"{job_id}-worker-0  Succeeded" in out
    rc, _, err = cli("dlc", "logs", job_id, "ps-0")
    assert rc == 2 and "has no pod" in err


def test_cli_refuses_bad_input_before_anything_launches(cli, ws):
    before = len(ws.jobs.list())
    rc, _, err = cli("dlc", "submit", "tfjob", "--name=x", "--workers=2", "--command=no_such_program --x")
    assert rc == 2 and "'no_such_program' is not found on the workers' PATH" in err
    rc, _, err = cli("dlc", "submit", "tfjob", "--name=x", "--workers=-1", "--command=python t.py")
    assert rc == 2 and "--workers must be 0 or more" in err
    rc, _, err = cli(
        "dlc", "submit", "tfjob", "--name=x", "--workers=1", "--command=python t.py", "--data_sources=no_such_dataset"
    )
    assert rc == 2 and "data_sources" in err
    rc, _, err = cli("dlc", "submit", "pytorchjob", "--name=x", "--workers=1", "--command=python t.py")
    if importlib.util.find_spec("torch") is None:
        assert rc == 2 and "pip install torch" in err
    else:  # with torch here the next check speaks: the script
        assert rc == 2 and "the script 't.py' does not exist" in err
    assert len(ws.jobs.list()) == before


def test_roles_decide_who_submits_and_who_stops(live_server, rank_script):
    from pai_lab.errors import Forbidden

    guest = live_server.client("guest").workspace("default")
    with pytest.raises(Forbidden, match=r"job\.submit"):
        guest.jobs.submit(name="g", command=f"python {rank_script}", workers=1)
    dev = live_server.client("dev").workspace("default")
    job = dev.jobs.submit(name="mine", command=f"python {rank_script} --mode=sleep", workers=1)
    with pytest.raises(Forbidden, match=r"job\.stop"):
        live_server.client("guest").workspace("default").jobs.get(job.id).stop()
    assert job.stop().state == "Stopped"


def test_the_cluster_is_shown_with_its_workers(live_server):
    import psutil
    from dask.system import CPU_COUNT

    info = live_server.client().http.get("/cluster")
    assert info["scheduler_address"] and len(info["workers"]) == 2
    assert {"name", "cores", "memory", "gpus"} <= set(info["workers"][0])
    # the embedded LocalCluster claims the machine's cores and memory, split between its workers, not more
    assert sum(w["cores"] for w in info["workers"]) == max(CPU_COUNT, 2)
    assert 0 < sum(w["memory"] for w in info["workers"]) <= psutil.virtual_memory().total


def test_a_job_leaves_no_dask_tracebacks_on_the_servers_terminal(live_server, ws, rank_script):
    job = ws.jobs.submit(name="quiet", command=f"python {rank_script} --mode=flags --lines=20", workers=2)
    assert job.wait(timeout=60).state == "Succeeded"
    log = (live_server.root / "server.log").read_text(errors="replace")
    assert "Exception while handling op" not in log and "TimeoutError" not in log


def test_keras3_under_multiworker_strategy_is_flagged_before_launch_and_at_failure(ws, tmp_path):
    script = tmp_path / "k3.py"
    # what the checker looks for, without paying for TensorFlow: the failure is printed as TF would
    script.write_text(
        "import sys\n"
        "if False:\n"
        "    import keras\n"
        "    strategy = tf.distribute.MultiWorkerMirroredStrategy(); model.fit(x)\n"
        "print('ValueError: Attempt to convert a value (PerReplica:{0: <tf.Tensor>}) with an unsupported type')\n"
        "sys.exit(1)\n"
    )
    job = ws.jobs.submit(name="k3", command=f"python {script}", workers=2)
    assert len(job.warnings) == 1 and "tf_keras" in job.warnings[0] and "TF_USE_LEGACY_KERAS=1" in job.warnings[0]
    job.wait(timeout=120, poll=0.3)
    assert job.state == "Failed"
    assert "exited with code 1: Keras 3 model.fit does not run under MultiWorkerMirroredStrategy" in job.reason


def test_the_monitor_shows_ranks_logs_curves_and_stops_a_job(ws, rank_script):
    job = ws.jobs.submit(name="watched", command=f"python {rank_script} --mode=flags --lines=50", workers=2)
    job.wait(timeout=120, poll=0.3)
    panel = job.monitor(refresh=0)
    assert f"{job.id}-worker-0" in panel.pods.value and f"{job.id}-worker-1" in panel.pods.value
    assert panel.pods.value.count("Succeeded") == 2 and "worker_job:0/2/2[100%]" in panel.header.value
    assert panel.pod.value == f"{job.id}-worker-0" and panel.log_view.value.splitlines()[-1] == "line-00049"
    assert panel.metric.value == "loss" and panel.chart.value.count("<polyline") == 2
    assert panel.stop_button.disabled

    sleeper = ws.jobs.submit(name="watched", command=f"python {rank_script} --mode=sleep", workers=1)
    wait_for(lambda: sleeper.refresh().state == "Running", 60)
    panel = sleeper.monitor(refresh=0)
    assert not panel.stop_button.disabled
    panel.stop_button.click()
    assert sleeper.refresh().state == "Stopped" and "Stopped" in panel.header.value
    assert panel.stop_button.disabled


def test_the_overhead_benchmark_runs(live_server, capsys, tmp_path):
    from benchmarks.training_overhead import main

    result = main(
        ["--plain", "--steps", "20", "--url", live_server.url, "--token", live_server.token, "--work", str(tmp_path)]
    )
    assert result["hand"]["steps_per_s"] > 0 and result["pai"]["steps_per_s"] > 0
    assert result["wall_ratio"] > 0 and "ratio pai/hand" in capsys.readouterr().out


def test_registered_data_and_code_sources_appear_at_the_manuals_mount_paths(live_server, ws, cli, unique_name):
    data = live_server.root / unique_name("data")
    data.mkdir()
    (data / "a.txt").write_text("hello")
    code = live_server.root / unique_name("code")
    code.mkdir()
    (code / "ls.py").write_text(
        "import os, sys\nprint('data=' + ','.join(sorted(os.listdir(sys.argv[1]))))\nprint('cwd=' + os.getcwd())\n"
    )
    dataset = unique_name("digits")
    live_server.client().http.post(
        "/workspaces/default/datasets", {"name": dataset, "source": str(data), "scan": False}
    )
    source = unique_name("code")
    rc, _, err = cli("dlc", "create", "code_source", "--display_name", source, "--code_repo_url", str(code))
    assert rc == 0, err
    job = ws.jobs.submit(
        name="mounts",
        command="python /root/code/ls.py /root/data/",
        workers=1,
        data_sources=dataset,
        code_source=source,
    )
    job.wait(timeout=120, poll=0.3)
    assert job.state == "Succeeded", job.reason
    lines = job.logs(0).splitlines()
    assert "data=a.txt" in lines
    assert lines[lines.index("data=a.txt") + 1] == f"cwd={job.work_dir}/code"  # a copy per job


def test_a_data_source_with_its_own_mount_path_appears_there(live_server, ws, unique_name):
    data = live_server.root / unique_name("extra")
    data.mkdir()
    (data / "b.txt").write_text("hi")
    (data / "c.txt").write_text("there")
    script = live_server.root / unique_name("ls") / "ls.py"
    script.parent.mkdir()
    script.write_text("import os, sys\nprint('data=' + ','.join(sorted(os.listdir(sys.argv[1]))))\n")
    dataset = unique_name("extra")
    live_server.client().http.post(
        "/workspaces/default/datasets",
        {"name": dataset, "source": str(data), "scan": False, "mount_path": "/mnt/extra/"},
    )
    job = ws.jobs.submit(name="own-mount", command=f"python {script} /mnt/extra/", workers=1, data_sources=dataset)
    job.wait(timeout=120, poll=0.3)
    assert job.state == "Succeeded", job.reason
    assert "data=b.txt,c.txt" in job.logs(0).splitlines()


def test_the_cell_magic_submits_a_job_file_and_follows_it(live_server, monkeypatch, rank_script, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("PAI_LAB_URL", live_server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "pai_lab")
    job = shell.run_cell_magic(
        "pai", "dlc submit tfjob", f"name=from_cell\nworkers=1\ncommand=python {rank_script} --mode=flags --lines=3\n"
    )
    assert job["name"] == "from_cell" and job["state"] == "Succeeded"
    out = capsys.readouterr().out
    assert f"[Info] Job [{job['id']}] is [Succeeded]" in out
    listed = shell.run_line_magic("pai", "dlc get job --display_name from_cell")
    assert job["id"] in list(listed["id"])


def _wheel(folder, name: str, module_source: str):
    """A pure-Python wheel made here, so pip installs it with no index to reach."""
    import base64
    import hashlib
    import zipfile

    files = {
        f"{name}/__init__.py": module_source.encode(),
        f"{name}-0.1.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n".encode(),
        f"{name}-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{name}-0.1.dist-info/RECORD"] = ("\n".join([*record, f"{name}-0.1.dist-info/RECORD,,"]) + "\n").encode()
    path = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def test_thirdparty_libs_are_installed_for_every_rank_and_a_failed_install_fails_the_job(
    cli, ws, tmp_path, monkeypatch
):
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    wheel = _wheel(tmp_path, "greet_pai", "def hello():\n    return 'hello from a wheel'\n")
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "requirements.txt").write_text(f"# the job's own packages\n{wheel}\n")
    script = tmp_path / "uses_lib.py"
    script.write_text("import os, greet_pai\nprint(greet_pai.hello(), os.environ['PAI_LAB_POD'])\n")
    rc, out, err = cli(
        "dlc",
        "submit",
        "tfjob",
        "--name=libs",
        "--workers=2",
        f"--command=python {script}",
        f"--thirdparty_lib_dir={libs}",
    )
    assert rc == 0, err
    job_id = out.split("| ")[3].split()[0]
    assert (
        out.rstrip().splitlines()[-1].endswith(f"[Info] Job [{job_id}] is [Succeeded]")
        or f"[Info] Job [{job_id}] is [Succeeded]" in out
    ), out
    job = ws.jobs.get(job_id)
    for index in (0, 1):
        lines = [x.line for x in job.log_lines(f"{job_id}-worker-{index}")]
        assert f"hello from a wheel {job_id}-worker-{index}" in lines

    missing = tmp_path / "not_there-0.1-py3-none-any.whl"
    rc, out, err = cli(
        "dlc",
        "submit",
        "tfjob",
        "--name=nolibs",
        "--workers=1",
        f"--command=python {script}",
        f"--thirdparty_libs={missing}",
    )
    job_id = out.split("| ")[3].split()[0]
    job = ws.jobs.get(job_id)
    assert job.state == "Failed" and "pip install of thirdparty_libs failed" in job.reason
    assert any(
        line.line.startswith("[pip]") and "not_there" in line.line for line in job.log_lines(f"{job_id}-worker-0")
    )


def test_a_relative_script_in_the_jobs_code_folder_runs_as_its_command(live_server, ws, unique_name):
    code = live_server.root / unique_name("relcode")
    code.mkdir()
    (code / "train.sh").write_text('#!/bin/sh\necho "trained in $(pwd) with $1"\n')
    (code / "train.sh").chmod(0o755)
    job = ws.jobs.submit(name="relative", command="./train.sh --epochs=1", workers=1, code_source=str(code))
    _finished(job)
    assert job.state == "Succeeded", job.reason
    assert f"trained in {job.work_dir}/code with --epochs=1" in job.logs(0).splitlines()


def test_a_followed_job_sends_its_progress_to_a_server_that_takes_it(ws, rank_script):
    job = ws.jobs.submit(name="followed", command=f"python {rank_script} --mode=flags --lines=5", workers=2)
    job.wait(timeout=120, poll=0.3, progress=True)
    assert job.state == "Succeeded", job.reason
    assert ws.jobs._progress_refused is False  # this server knows the parameter: it was never dropped
    # the long poll with a progress line answers at once when the line differs
    detail = job.refresh(history_after=0, wait=5, progress="not the job's line")
    assert detail.state == "Succeeded" and ws.jobs._progress_refused is False
