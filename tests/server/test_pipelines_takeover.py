"""Who drives a pipeline run when a team's servers share one root and store: of two servers starting at
once over a run left interrupted, exactly one resumes it (each step's process runs once more at most); a
teammate's live server takes over a run whose driving server was SIGKILLed and carries it to Succeeded;
and a run whose submitter was removed from the workspace meanwhile fails on resume, naming them, with no
step started for them."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import DateTime, bindparam, create_engine, text

from tests.conftest import start_pai_server
from tests.fixtures.pipelines import gated_value_pipeline
from tests.fixtures.training import wait_for
from tests.server.test_pipelines_runs import steps_of

FINISHED = ("Succeeded", "Failed", "Terminated")


def started(run, step: str) -> int:
    """How many processes ran ``step`` of the run (each notes its start in the step's log)."""
    return run.get_logs(step).count(f"{step} starts")


def held_running(run) -> bool:
    return {n.name: n.status for n in run.refresh().nodes}.get("held") == "Running"


def store_sql(root, sql: str, **params):
    """One statement on the store of the servers on ``root`` (committed); the first column of its first row."""
    from tests.fixtures import postgres

    url = postgres.database_for_root(root) if postgres.STORE == "postgresql" else f"sqlite:///{root}/.pai_lab/pai.db"
    engine = create_engine(url)
    try:
        with engine.begin() as conn:  # a time written as the store writes its own (its text form on SQLite)
            kinds = [bindparam(k, type_=DateTime()) for k, v in params.items() if isinstance(v, datetime)]
            result = conn.execute(text(sql).bindparams(*kinds), params)
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def driver_of(root, run_id: str) -> dict:
    """The run's claim as the store holds it (which server drives it)."""
    held = store_sql(root, "SELECT driver FROM pipeline_runs WHERE id = :id", id=run_id)
    return json.loads(held) if held else {}


def kill(*servers) -> None:
    for server in servers:
        server.proc.send_signal(signal.SIGKILL)
    for server in servers:
        server.proc.wait(30)
        server.stop()


def servers_at_once(root, count: int = 2) -> list:
    """``count`` servers over ``root`` started together (each Popen right after the other)."""
    (root / ".pai_lab" / "server.json").unlink(missing_ok=True)  # a killed server leaves its runtime file
    started_ = [None] * count
    failed: list[BaseException] = []

    def start(i: int) -> None:
        try:
            started_[i] = start_pai_server(root)
        except BaseException as exc:  # noqa: BLE001 - reported below, after the others started
            failed.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    servers = [s for s in started_ if s is not None]
    if failed:
        for server in servers:
            server.stop()
        raise failed[0]
    return servers


def test_of_two_servers_starting_at_once_exactly_one_resumes_an_interrupted_run(tmp_path):
    root = tmp_path / "team"
    servers = [start_pai_server(root)]
    try:
        for round_ in range(3):
            gate = root / f"gate-{round_}"
            run = (
                servers[0]
                .client()
                .workspace("default")
                .pipelines.run(gated_value_pipeline(gate, "held"), name="raced", cache=False)
            )
            wait_for(lambda run=run: held_running(run) and started(run, "held"), timeout=90)
            assert (started(run, "first"), started(run, "held")) == (1, 1)
            kill(*servers)
            servers = servers_at_once(root)
            pids = {s.proc.pid for s in servers}
            run = servers[0].client().workspace("default").pipelines.get(run.id)
            wait_for(lambda run=run: held_running(run), timeout=90)
            assert driver_of(root, run.id)["pid"] in pids
            assert "control plane restarted while the run was Running" in run.detail.reason
            gate.write_text("open")
            run.wait_for_completion(show_outputs=False, timeout=120)
            assert run.detail.status == "Succeeded" and run.detail.attempt == 1
            # one driver: the held step's process ran once after the restart, the succeeded one not again
            assert (started(run, "first"), started(run, "held")) == (1, 2)
            log = (root / "server.log").read_text()
            assert sum(run.id in line for line in log.splitlines() if "they go on:" in line) == 1
    finally:
        for server in servers:
            server.stop()


def test_a_teammates_server_takes_over_a_run_whose_server_was_killed(tmp_path):
    root = tmp_path / "team"
    first = start_pai_server(root)
    (root / ".pai_lab" / "server.json").unlink()
    second = start_pai_server(root)
    try:
        gate = root / "gate"
        run = first.client().workspace("default").pipelines.run(gated_value_pipeline(gate, "held"), name="orphaned")
        wait_for(lambda: held_running(run) and started(run, "held"), timeout=90)
        assert driver_of(root, run.id)["pid"] == first.proc.pid
        kill(first)
        # the live teammate's server carries it on, in the same attempt, without a restart of the first
        theirs = second.client().workspace("default").pipelines.get(run.id)
        wait_for(lambda: driver_of(root, run.id).get("pid") == second.proc.pid, timeout=60)
        wait_for(lambda: held_running(theirs), timeout=90)
        reason = theirs.detail.reason
        assert f"process {first.proc.pid}) stopped while the run was Running" in reason, reason
        assert f"this server (host {driver_of(root, run.id)['host']}, process {second.proc.pid})" in reason
        held = {n.name: n for n in theirs.detail.nodes}["held"]
        assert held.reason == "re-run: the control plane driving the run stopped while it ran"
        gate.write_text("open")
        theirs.wait_for_completion(show_outputs=False, timeout=120)
        assert theirs.detail.status == "Succeeded" and theirs.detail.attempt == 1
        assert (started(theirs, "first"), started(theirs, "held")) == (1, 2)
        wait_for(lambda: not steps_of(run.id))
    finally:
        second.stop()
        first.stop()


def test_a_run_whose_submitter_was_removed_fails_on_resume_naming_them(tmp_path, unique_name):
    root = tmp_path / "team"
    first = start_pai_server(root)
    (root / ".pai_lab" / "server.json").unlink()
    second = start_pai_server(root)
    try:
        owner = first.client().create_workspace(unique_name("rm"))
        owner.members.add("dev", ["AlgorithmDeveloper"])
        mine = first.client("dev").workspace(owner.name).pipelines
        # resumed by the Owner after dev left: the run fails, naming dev, and its held step is stopped
        run = mine.run(gated_value_pipeline(root / "gate-resumed", "held"), name="resumed", cache=False)
        wait_for(lambda: held_running(run) and started(run, "held"), timeout=90)
        run.suspend()
        wait_for(lambda: run.refresh().status == "Suspended")
        # a run dev submitted through the first server, killed mid-step: the second takes it over
        orphan = mine.run(gated_value_pipeline(root / "gate-killed", "held"), name="killed", cache=False)
        wait_for(lambda: held_running(orphan) and started(orphan, "held"), timeout=90)
        owner.members.remove("dev")
        resumed = second.client().workspace(owner.name).pipelines.get(run.id).resume()
        wait_for(lambda: resumed.refresh().status in FINISHED, timeout=60)
        assert resumed.detail.status == "Failed"
        reason = resumed.detail.reason
        assert "submitter 'dev'" in reason and "not a member of workspace" in reason, reason
        assert {n.name: n.status for n in resumed.detail.nodes}["held"] == "Terminated"
        wait_for(lambda: not steps_of(run.id), timeout=60)
        kill(first)
        theirs = second.client().workspace(owner.name).pipelines.get(orphan.id)
        wait_for(lambda: theirs.refresh().status in FINISHED, timeout=60)
        assert theirs.detail.status == "Failed"
        assert "submitter 'dev'" in theirs.detail.reason and "No step was started" in theirs.detail.reason
        nodes = {n.name: n for n in theirs.detail.nodes}
        assert nodes["first"].status == "Succeeded" and nodes["held"].status == "Skipped"
        assert started(theirs, "held") == 1  # nothing ran again for dev
        wait_for(lambda: not steps_of(orphan.id), timeout=60)
    finally:
        second.stop()
        first.stop()


def test_a_run_a_server_of_another_host_drives_is_taken_over_once_its_lease_lapses(tmp_path):
    root = tmp_path / "team"
    server = start_pai_server(root)
    try:
        gate = root / "gate"
        run = (
            server.client()
            .workspace("default")
            .pipelines.run(gated_value_pipeline(gate, "held"), name="far", cache=False)
        )
        wait_for(lambda: held_running(run) and started(run, "held"), timeout=90)
    finally:
        kill(server)
    # as if a server of another host drove it (its process cannot be seen from here), its lease running
    far = json.dumps({"host": "another-host.example", "pid": 1, "started": 0.0})
    until = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(minutes=10)
    store_sql(root, "UPDATE pipeline_runs SET driver = :d, lease_until = :u WHERE id = :id", d=far, u=until, id=run.id)
    (root / ".pai_lab" / "server.json").unlink(missing_ok=True)
    server = start_pai_server(root)
    try:
        run = server.client().workspace("default").pipelines.get(run.id)
        log = root / "server.log"
        wait_for(lambda: log.read_text().count("pai_lab | extension was successfully loaded") == 2)
        time.sleep(12)  # two rounds of the server's watch: the claim of the other host holds
        assert driver_of(root, run.id)["host"] == "another-host.example"
        assert run.refresh().status == "Running" and started(run, "held") == 1
        lapsed = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)
        store_sql(root, "UPDATE pipeline_runs SET lease_until = :u WHERE id = :id", u=lapsed, id=run.id)
        wait_for(lambda: driver_of(root, run.id).get("pid") == server.proc.pid, timeout=60)
        wait_for(lambda: held_running(run) and started(run, "held") == 2, timeout=90)
        assert "(host another-host.example, process 1) stopped while the run was Running" in run.detail.reason
        gate.write_text("open")
        run.wait_for_completion(show_outputs=False, timeout=120)
        assert run.detail.status == "Succeeded" and run.detail.attempt == 1
    finally:
        server.stop()
