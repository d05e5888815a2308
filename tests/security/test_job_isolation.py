"""Jobs kept apart from the control plane, probed as a member with a job and as an operator pulling plugs.

On a server with several users an AlgorithmDeveloper's ranks run in the sandbox: they cannot read the
state folder (the owner's token, the store) or write outside their output, they hold a job token
instead of the server's, good for their own workspace while the job runs. Whatever a rank starts ends
with it, when it fails, and after a control-plane SIGKILL once the server is back.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import requests

from tests.conftest import ROLE_OF, start_pai_server
from tests.fixtures.training import processes_of, wait_for

PROBE = r"""
import os, sys
from pathlib import Path
root = Path(sys.argv[1])
print("token=" + os.environ.get("PAI_LAB_TOKEN", ""), flush=True)
for name in ("server.json", "pai.db", "pai.db-wal", ""):
    path = root / ".pai_lab" / name
    try:
        seen = sorted(os.listdir(path)) if path.is_dir() else path.read_bytes()[:300]
        print(f"read .pai_lab/{name}: {seen!r}")
    except OSError as exc:
        print(f"refused .pai_lab/{name}: {exc.strerror}")
try:
    (root / "planted.txt").write_text("x")
    print("wrote into the root")
except OSError as exc:
    print(f"refused writing into the root: {exc.strerror}")
(Path(os.environ["PAI_LAB_OUTPUT_DIR"]) / "result.txt").write_text("kept")
import pai_lab
ws = pai_lab.connect("default")
print("own job: " + ws.jobs.get(os.environ["PAI_LAB_JOB_ID"]).name)
try:
    pai_lab.connect("private")
    print("other workspace: answered")
except Exception as exc:
    print(f"other workspace: refused {getattr(exc, 'status', '')}")
"""

# A rank that starts a child in a session of its own (out of the rank's process group), then fails or waits.
# It fails once the test opens its gate (a file in the root), so the test sees both ranks up first.
SPAWNER = r"""
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "300"], start_new_session=True)
print(f"child started", flush=True)
if sys.argv[1] == "fail":
    while not os.path.exists("gate-" + os.environ["PAI_LAB_JOB_ID"]):
        time.sleep(0.1)
    sys.exit(4)
time.sleep(300)
"""


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A `pai server` shared by a team (so its local ranks are sandboxed), with a second workspace."""
    root = tmp_path_factory.mktemp("team") / "root"
    server = start_pai_server(root)
    owner = server.client()
    for user, role in ROLE_OF.items():
        owner.workspace("default").members.add(user, [role])
    owner.create_workspace("private")
    code = root / "code"
    code.mkdir()
    (code / "probe.py").write_text(PROBE)
    (code / "spawner.py").write_text(SPAWNER)
    yield server
    server.stop()


def _ended(job, timeout=120):
    job.wait(timeout=timeout, poll=0.3)
    return job


def test_a_members_ranks_see_no_secret_and_hold_only_a_job_token(team):
    secret = team.token
    ws = team.client("dev").workspace("default")
    job = _ended(ws.jobs.submit(name="probe", workers=1, command=f"python code/probe.py {team.root}"))
    logs = job.logs(None)
    assert job.state == "Succeeded", job.reason + logs
    assert secret not in logs and "tok-dev" not in logs
    for name in ("server.json", "pai.db", "pai.db-wal"):
        assert f"refused .pai_lab/{name}: No such file or directory" in logs
    listing = next(line for line in logs.splitlines() if "read .pai_lab/:" in line)
    assert listing.endswith("['jobs']")  # an empty folder in its place, but for the way to the job's own output
    assert "refused writing into the root: Read-only file system" in logs
    assert not (team.root / "planted.txt").exists()
    assert (team.root / ".pai_lab" / "jobs" / job.id / "output" / "result.txt").read_text() == "kept"
    # the job token: the submitter's rights in the job's workspace, while the job ran
    assert "own job: probe" in logs and "other workspace: refused 403" in logs
    token = logs.split("token=", 1)[1].split()[0]
    assert token.startswith("pai-job-")
    answer = requests.get(
        f"{team.url}pai-lab/api/v1/workspaces/default/jobs/{job.id}",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    )
    assert answer.status_code == 401  # the job has ended: so has its token
    assert requests.get(
        f"{team.url}api/contents", headers={"Authorization": f"token {token}"}, timeout=10
    ).status_code in (401, 403)  # never a credential for Jupyter's own routes


def test_a_script_the_sandbox_cannot_see_is_refused_at_submission(team):
    outside = Path(tempfile.mkdtemp(prefix="pai-outside-")) / "train.py"
    outside.write_text("print('hi')")
    ws = team.client("dev").workspace("default")
    with pytest.raises(Exception) as refused:
        ws.jobs.submit(name="outside", workers=1, command=f"python {outside}")
    assert getattr(refused.value, "status", None) == 400 and "sandbox" in str(refused.value)


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "single-user"])
def test_a_failing_ranks_children_end_with_it(team, tmp_path_factory, sandboxed):
    if sandboxed:
        server, ws = team, team.client("dev").workspace("default")
    else:
        root = tmp_path_factory.mktemp("solo") / "root"
        server = start_pai_server(root, "--job-sandbox", "off")
        (root / "code").mkdir()
        (root / "code" / "spawner.py").write_text(SPAWNER)
        ws = server.client().workspace("default")
    try:
        job = ws.jobs.submit(name="spawns", workers=2, command="python code/spawner.py fail")
        wait_for(lambda: job.logs(None).count("child started") == 2, 60)
        assert len(processes_of(job.id)) == 2  # both ranks, with their children, are up
        (server.root / f"gate-{job.id}").write_text("")
        _ended(job)
        assert job.state == "Failed" and "exited with code 4" in job.reason
        assert processes_of(job.id) == {}
    finally:
        if server is not team:
            server.stop()


@pytest.mark.parametrize("sandbox", ["bubblewrap", "off"])
def test_nothing_of_a_job_outlives_a_control_plane_sigkill(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("crash") / "root"
    server = start_pai_server(root, "--job-sandbox", sandbox)
    (root / "code").mkdir()
    (root / "code" / "spawner.py").write_text(SPAWNER)
    job = (
        server.client().workspace("default").jobs.submit(name="crash", workers=2, command="python code/spawner.py wait")
    )
    wait_for(lambda: job.logs(None).count("child started") == 2, 60)
    assert len(processes_of(job.id)) == 2
    server.proc.kill()  # the operator pulls the plug
    server.proc.wait(10)
    (root / ".pai_lab" / "server.json").unlink(missing_ok=True)
    back = start_pai_server(root, "--job-sandbox", sandbox)
    try:
        wait_for(lambda: not processes_of(job.id), 30)
        again = back.client().workspace("default").jobs.get(job.id)
        assert again.state == "Failed" and "the control plane restarted" in again.reason
    finally:
        back.stop()


def test_a_team_server_without_bubblewrap_refuses_local_jobs(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("nobwrap") / "root"
    config = root.parent / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"PaiLabApp": {"bubblewrap_path": str(root.parent / "no-such-bwrap")}})
    )
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(config))  # how an operator configures the server
    server = start_pai_server(root)
    try:
        server.client().workspace("default").members.add("dev", ["AlgorithmDeveloper"])
        (root / "train.py").write_text("print('hi')")
        answer = requests.post(
            f"{server.url}pai-lab/api/v1/workspaces/default/jobs",
            json={"name": "x", "command": "python train.py", "workers": 1},
            headers={"Authorization": "token tok-dev"},
            timeout=30,
        )
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert error["field"] == "job_sandbox" and "apt install bubblewrap" in error["message"]
        assert "dask_scheduler_address" in error["message"]
    finally:
        server.stop()
