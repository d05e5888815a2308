"""Pipeline runs when an operator pulls plugs and a team shares one store: a run another live server
drives is suspended, resumed and terminated through a teammate's server without a second driver taking
it on, and a server killed outright (SIGKILL) mid-run comes back with the run going on: no step of the
killed server left running beside its re-run, and the run ends instead of staying Running. And who may
act on a run: a member without a pipeline role sees it but neither resumes nor stops it, the Owner of
another workspace reaches it through neither workspace."""

from __future__ import annotations

import signal

from pai_lab.pipelines import component
from tests.conftest import start_pai_server
from tests.fixtures.pipelines import gated_value_pipeline
from tests.fixtures.training import wait_for
from tests.server.test_pipelines_runs import steps_of
from tests.server.test_pipelines_takeover import driver_of

FINISHED = ("Succeeded", "Failed", "Terminated")


def run_folder(root, run_id: str):
    return next(p for p in root.rglob(run_id) if p.is_dir() and p.parent.name == "runs")


def a_second_server(root):
    """Another `pai server` over the same root and store, as a teammate's under JupyterHub."""
    (root / ".pai_lab" / "server.json").unlink()  # the second writes its own: wait for that one
    return start_pai_server(root)


def test_a_run_a_live_server_drives_is_suspended_resumed_and_terminated_through_a_teammates(tmp_path):
    root = tmp_path / "team"
    first = start_pai_server(root)
    second = a_second_server(root)
    try:
        gate = root / "gate"

        @component
        def wait_for_the_gate():
            import os
            import time

            while not os.path.exists(gate):
                time.sleep(0.1)

        run = first.client().workspace("default").pipelines.run(wait_for_the_gate, name="held")
        wait_for(lambda: run.refresh().nodes[0].status == "Running")
        theirs = second.client().workspace("default").pipelines.get(run.id)
        theirs.suspend()
        wait_for(lambda: theirs.refresh().status == "Suspended")
        theirs.resume()
        assert theirs.refresh().status == "Running"
        # the first server's driver goes on with it; the second started none of its own
        assert driver_of(root, run.id)["pid"] == first.proc.pid
        theirs.terminate()
        wait_for(lambda: theirs.refresh().status in FINISHED, timeout=60)
        assert theirs.detail.status == "Terminated", theirs.detail.reason
        assert theirs.detail.nodes[0].status == "Terminated"
        wait_for(lambda: not steps_of(run.id), timeout=60)
    finally:
        second.stop()
        first.stop()


def test_a_server_killed_mid_run_comes_back_and_the_run_ends(tmp_path):
    root = tmp_path / "root"
    server = start_pai_server(root)
    try:
        gate = root / "gate"
        run = server.client().workspace("default").pipelines.run(gated_value_pipeline(gate, "held"), name="killed")
        wait_for(lambda: {n.name: n.status for n in run.refresh().nodes}.get("held") == "Running")
        wait_for(lambda: bool(steps_of(run.id)))
        before = {p.pid for p in steps_of(run.id)}
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(30)
    finally:
        server.stop()
    # the killed server's step processes end with it: none goes on beside the re-run
    wait_for(lambda: not before & {p.pid for p in steps_of(run.id)})
    (root / ".pai_lab" / "server.json").unlink(missing_ok=True)  # a killed server leaves its runtime file
    server = start_pai_server(root)
    try:  # killed again while it resumes the run: the next start resumes it once more
        run = server.client().workspace("default").pipelines.get(run.id)
        wait_for(lambda: run.refresh().status == "Running")
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(30)
    finally:
        server.stop()
    (root / ".pai_lab" / "server.json").unlink(missing_ok=True)
    server = start_pai_server(root)
    try:
        run = server.client().workspace("default").pipelines.get(run.id)
        wait_for(lambda: run.refresh().status == "Running")
        assert "control plane restarted while the run was Running" in run.detail.reason
        assert run.detail.attempt == 1
        wait_for(lambda: {n.name: n.status for n in run.refresh().nodes}.get("held") == "Running")
        gate.write_text("open")
        run.wait_for_completion(show_outputs=False, timeout=120)
        assert run.detail.status == "Succeeded"
        assert {a.name: a.value for a in run.get_outputs()}["value"] == 8
        assert run.get_logs("held").count("held starts") >= 2
        wait_for(lambda: not steps_of(run.id))
    finally:
        server.stop()


def test_a_low_role_or_another_workspace_neither_resumes_nor_sees_nor_stops_a_run(live_server, unique_name, tmp_path):
    owner = live_server.client().create_workspace(unique_name("pl"))
    owner.members.add("labeladmin", ["LabelingAdmin"])
    owner.members.add("guest", ["Guest"])
    gate = tmp_path / "gate"

    @component
    def wait_for_the_gate():
        import os
        import time

        while not os.path.exists(gate):
            time.sleep(0.05)

    run = owner.pipelines.run(wait_for_the_gate, name="held")
    wait_for(lambda: run.refresh().nodes[0].status == "Running")
    run.suspend()
    wait_for(lambda: run.refresh().status == "Suspended")
    runs = f"/pipelines/runs/{run.id}"

    def call(ws, workspace: str, method: str, tail: str = "", **kw):
        return ws.http.session.request(method, ws.http.url(f"/workspaces/{workspace}{runs}{tail}"), **kw)

    # a member with no pipeline role (LabelingAdmin) or a Guest sees the run but may not act on it
    for user in ("labeladmin", "guest"):
        ws = live_server.client(user).workspace(owner.name)
        assert call(ws, owner.name, "GET").status_code == 200
        for verb in ("resume", "terminate", "retry", "suspend"):
            refused = call(ws, owner.name, "POST", f"/{verb}")
            assert refused.status_code == 403, refused.text
            assert "pipeline.manage" in refused.json()["error"]["message"]
    # the Owner of another workspace reaches it neither through that workspace nor through their own
    stranger = live_server.client("stranger")
    own = stranger.create_workspace(unique_name("own"))
    for tail, method in (("", "GET"), ("/logs", "GET"), ("/resume", "POST"), ("/terminate", "POST")):
        params = {"node": "wait_for_the_gate"} if tail == "/logs" else None
        assert call(own, own.name, method, tail, params=params).status_code == 404
        assert call(own, owner.name, method, tail, params=params).status_code == 403
    long_poll = call(own, own.name, "GET", params={"wait": "5", "status": "Suspended"})
    assert long_poll.status_code == 404
    assert run.refresh().status == "Suspended"  # every refusal left it as it was
    run.terminate()
    wait_for(lambda: run.refresh().status == "Terminated")
