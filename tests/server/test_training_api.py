"""The training REST API as a caller sees it (in-process server, jp_fetch), and the job monitor widget."""

from __future__ import annotations

import asyncio

from tests.fixtures.training import pids_in, processes_of


async def test_bad_jobs_are_refused_with_the_field_and_nothing_is_stored(api, members, rank_script):
    await members("default")
    base = {"name": "bad", "command": f"python {rank_script}", "workers": 1}
    cases = [
        ({**base, "command": ""}, "command", "--command is required"),
        ({**base, "workers": -2}, "workers", "0 or more"),
        ({**base, "workers": 0}, "workers", "no ranks to run"),
        ({**base, "wrokers": 2}, "wrokers", "unknown field"),
        ({**base, "data_sources": "nope"}, "data_sources", "nope"),
        ({**base, "code_source": "/no/such/folder"}, "code_source", "outside the allowed folders"),
        ({**base, "command": "python /root/code/missing.py"}, "command", "does not exist"),
        ({**base, "hyperParameters": "/no/such/file.txt"}, "hyperParameters", "outside the allowed folders"),
        ({**base, "worker_image": "registry.example/tf:2.3"}, "worker_image", "pai dlc get images"),
    ]
    for body, field, words in cases:
        status, answer = await api("POST", "/workspaces/default/jobs", body)
        assert status == 400, (body, answer)
        assert answer["error"]["field"] == field and words in answer["error"]["message"], answer
    status, answer = await api("POST", "/workspaces/default/jobs", base, user="guest")
    assert status == 403 and "job.submit" in answer["error"]["message"]
    assert await api("GET", "/workspaces/default/jobs") == (200, [])
    status, answer = await api("GET", "/workspaces/default/jobs/dlc-20200101000000-nothere")
    assert status == 404 and answer["error"]["field"] == "job_id"
    status, answer = await api("GET", "/workspaces/default/models/nothing")
    assert status == 404


async def test_a_job_runs_through_the_api_and_the_server_leaves_no_process(api, rank_script, tmp_path):
    hyper = tmp_path / "hyper_para.txt"
    hyper.write_text("batch_size=10\nlearning_rate=0.01\n")
    status, job = await api(
        "POST",
        "/workspaces/default/jobs",
        {
            "name": "api",
            "command": f"python {rank_script} --mode=flags --lines=40",
            "workers": 1,
            "hyperParameters": str(hyper),
        },
    )
    assert status == 201 and job["state"] == "Creating" and job["pods"][0]["name"] == f"{job['id']}-worker-0"
    # Followed by long polls: each answers when the job has moved on, so every state is seen.
    seen = [h["state"] for h in job["history"]]
    for _ in range(60):
        status, job = await api(
            "GET", f"/workspaces/default/jobs/{job['id']}", params={"history_after": str(len(seen)), "wait": "30"}
        )
        assert status == 200
        assert len(job["history"]) > len(seen) or job["state"] in ("Succeeded", "Failed", "Stopped")
        seen = [h["state"] for h in job["history"]]
        if job["state"] in ("Succeeded", "Failed", "Stopped"):
            break
    assert job["state"] == "Succeeded", job["reason"]
    assert seen[0] == "Creating" and "Running" in seen
    status, same = await api(
        "GET", f"/workspaces/default/jobs/{job['id']}", params={"history_after": "99", "wait": "0.2"}
    )
    assert status == 200 and same["history"] == job["history"]  # an ended job answers at once
    status, answer = await api("GET", f"/workspaces/default/jobs/{job['id']}", params={"wait": "600"})
    assert status == 400 and answer["error"]["field"] == "wait"
    assert job["history"][0]["state"] == "Creating" and job["history"][-1]["state"] == "Succeeded"
    status, lines = await api(
        "GET",
        f"/workspaces/default/jobs/{job['id']}/logs",
        params={"pod": f"{job['id']}-worker-0", "max_events_num": "5"},
    )
    assert status == 200 and [x["line"] for x in lines] == [f"line-{i:05d}" for i in range(35, 40)]
    status, lines = await api("GET", f"/workspaces/default/jobs/{job['id']}/logs")
    argv = next(x["line"] for x in lines if x["line"].startswith("argv="))
    assert argv.endswith('"--batch_size=10", "--learning_rate=0.01"]')
    status, points = await api("GET", f"/workspaces/default/jobs/{job['id']}/metrics")
    assert [p["step"] for p in points] == [0, 10, 20, 30] and {p["name"] for p in points} == {"loss"}
    status, listed = await api("GET", "/workspaces/default/jobs")
    assert {"id", "name", "state", "workers", "ps", "chief", "created_by", "created_at", "reason"} <= set(listed[0])
    status, answer = await api("POST", f"/workspaces/default/jobs/{job['id']}/stop")
    assert status == 409 and answer["error"]["code"] == "not_stoppable"

    # a running job: the workspace cannot be deleted under it, and stopping it ends its process
    status, _ = await api("POST", "/workspaces", {"name": "trainers"})
    assert status == 201
    status, sleeper = await api(
        "POST",
        "/workspaces/trainers/jobs",
        {"name": "sleeper", "command": f"python {rank_script} --mode=sleep", "workers": 1},
    )
    for _ in range(600):
        _, lines = await api("GET", f"/workspaces/trainers/jobs/{sleeper['id']}/logs")
        if pids_in("\n".join(x["line"] for x in lines)):
            break
        await asyncio.sleep(0.2)
    assert list(processes_of(sleeper["id"])) == [f"{sleeper['id']}-worker-0"]
    status, answer = await api("DELETE", "/workspaces/trainers")
    assert status == 409 and "stop them first" in answer["error"]["message"]
    status, stopped = await api("POST", f"/workspaces/trainers/jobs/{sleeper['id']}/stop")
    assert status == 200 and stopped["state"] == "Stopped"
    assert not processes_of(sleeper["id"])
    assert (await api("DELETE", "/workspaces/trainers"))[0] == 204


async def test_a_long_poll_answers_when_the_progress_line_moves_without_a_state_change(api, tmp_path):
    go = tmp_path / "go"  # worker-1 ends when the test says, not before the test has seen both ranks run
    script = tmp_path / "one_waits.py"
    script.write_text(
        "import os, pathlib, time\n"
        "if os.environ['PAI_LAB_TASK_INDEX'] == '0':\n    time.sleep(300)\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n    time.sleep(0.05)\n"
    )
    status, job = await api(
        "POST", "/workspaces/default/jobs", {"name": "half", "command": f"python {script}", "workers": 2}
    )
    assert status == 201
    url = f"/workspaces/default/jobs/{job['id']}"
    for _ in range(600):  # until both ranks run
        _, job = await api("GET", url)
        if job["progress"] == "worker_job:2/0/2[0%]":
            break
        await asyncio.sleep(0.1)
    assert job["state"] == "Running", job
    try:
        # worker-1 exits while worker-0 sleeps on: the job stays Running, its progress line moves, and a
        # follower waiting on that line hears of it long before its 60 s wait is over
        query = {"history_after": str(len(job["history"])), "progress": job["progress"], "wait": "60"}
        follower = asyncio.ensure_future(api("GET", url, params=query))
        await asyncio.sleep(0.5)
        assert not follower.done()  # nothing moved yet: the poll waits
        go.touch()
        status, moved = await asyncio.wait_for(follower, 15)
        assert status == 200 and moved["state"] == "Running" and moved["history"] == job["history"]
        assert moved["progress"] == "worker_job:1/1/2[50%]"
        # the same line asked again: no answer until the wait is over (or the job moves on)
        query = {"history_after": str(len(job["history"])), "progress": moved["progress"], "wait": "0.5"}
        status, same = await api("GET", url, params=query)
        assert status == 200 and same["progress"] == moved["progress"] and same["state"] == "Running"
        status, answer = await api("GET", url, params={**query, "progress": "x" * 1001})
        assert status == 400 and answer["error"]["field"] == "progress"
    finally:
        status, stopped = await api("POST", f"{url}/stop")
    assert status == 200 and stopped["state"] == "Stopped"
