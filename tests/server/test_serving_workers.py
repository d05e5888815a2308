"""Serving on a resource group's Dask workers: a workspace whose group is a Dask cluster of its own
(a scheduler and two worker processes on loopback) has its services' instances hosted on those
workers, reached by the gateway over TCP; a blue-green release keeps answering; a worker killed under
load has its instance replaced on the other worker, with only the requests it held failing.
Driven as a member would, through the Python client of a real `pai server`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

from tests.conftest import ROLE_OF, USER_TOKENS, start_pai_server
from tests.fixtures.dask_processes import scheduler_and_worker
from tests.fixtures.serving import PROBE_PROCESSOR, Load, until
from tests.fixtures.training import wait_for

SLOW_ECHO = """
import json, os, time


class Echo:
    def process(self, data):
        request = json.loads(data)
        time.sleep(float(request.get("sleep", 0)))
        if request.get("grow"):  # MB the instance takes and keeps
            self.held = b"x" * (int(request["grow"]) << 20)
        body = {"sum": sum(request.get("values", [])), "pid": os.getpid(), "tag": TAG}
        body["cuda"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        return json.dumps(body).encode(), 200
"""
NO_DASHBOARD = ("--no-dashboard",)
WORKER_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIA-OF-THE-MACHINE", "AWS_SECRET_ACCESS_KEY": "secret-of-the-machine"}


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """A Dask scheduler and two workers (no nanny: killing one ends it), each a process of its own; w2
    offers one GPU and 4 GB of MEMORY as Dask resources."""
    folder = tmp_path_factory.mktemp("serving-dask")
    dask = str(Path(sys.executable).parent / "dask")
    # every machine of a group has pai_lab installed: here, this checkout on the path
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    env.update(WORKER_CREDENTIALS)  # a worker on the server's machine, with its cloud credentials
    common = {"stdout": subprocess.DEVNULL, "start_new_session": True, "env": env}
    scheduler_file = folder / "scheduler.json"
    procs: dict[str, subprocess.Popen] = {}
    try:
        with open(folder / "scheduler.log", "wb") as log:
            procs["scheduler"] = subprocess.Popen(
                [
                    dask,
                    "scheduler",
                    "--scheduler-file",
                    str(scheduler_file),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    *NO_DASHBOARD,
                ],
                stderr=log,
                **common,
            )
        wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, 60)
        address = json.loads(scheduler_file.read_text())["address"]
        for name, resources in (("w1", ""), ("w2", "GPU=1 MEMORY=4e9")):
            with open(folder / f"{name}.log", "wb") as log:
                argv = [dask, "worker", address, "--no-nanny", "--nthreads", "2", "--name", name, *NO_DASHBOARD]
                argv += ["--host", "127.0.0.1", "--local-directory", str(folder / name)]
                argv += ["--resources", resources] if resources else []
                procs[name] = subprocess.Popen(
                    argv,
                    stderr=log,
                    **common,
                )
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, {n: p.pid for n, p in procs.items() if n != "scheduler"}
    finally:
        for proc in reversed(list(procs.values())):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(20)


@pytest.fixture(scope="module")
def server(tmp_path_factory, two_workers):
    server = start_pai_server(tmp_path_factory.mktemp("serving-workers") / "root")
    owner = server.client()
    owner.create_workspace("on_workers")
    for user, role in ROLE_OF.items():
        owner.workspace("on_workers").members.add(user, [role])
        owner.workspace("default").members.add(user, [role])
    owner.resource_groups.add("workers", two_workers[0])
    server.client("admin").workspace("on_workers").set_resource_group("workers")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def remote_echo(server, tmp_path_factory):
    """A service of two instances in the workspace whose group is the two-worker cluster."""
    ws = server.client("ops").workspace("on_workers")
    spec = _spec(tmp_path_factory.mktemp("echo"), "on_workers_echo", "a", 2)
    return ws.services.create(spec, timeout=240, progress=False)


def _spec(tmp_path: Path, name: str, tag: str, instances: int) -> dict:
    folder = tmp_path / f"{name}-{tag}"
    folder.mkdir()
    (folder / "app.py").write_text(f"TAG = {tag!r}\n" + SLOW_ECHO)
    return {
        "name": name,
        "processor_type": "python",
        "processor_path": str(folder),
        "processor_entry": "app.py",
        "processor_mainclass": "Echo",
        "metadata": {"instance": instances, "workers": 4},
    }


def _ask(svc, values=(1, 2), sleep: float = 0.0) -> dict:
    resp = requests.post(
        svc.endpoint, data=json.dumps({"values": list(values), "sleep": sleep}), headers={"Authorization": svc.token}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _settled(svc, on_workers: bool) -> list:
    """The service's instances once it is Running with all of them where asked (else empty)."""
    instances = svc.instances()
    done = svc.refresh().state == "Running" and all(bool(i.worker) == on_workers for i in instances)
    return instances if done and instances else []


def _host_of(instance, two_workers) -> int:
    """The worker process an instance descends from (in the sandbox, bubblewrap's processes lie between)."""
    (pid,) = [p.pid for p in psutil.Process(instance.pid).parents() if p.pid in two_workers[1].values()]
    return pid


def _running(svc) -> list:
    return [i for i in svc.instances() if i.status == "Running" and i.ready == "[1/1]"]


def test_a_service_of_a_workspace_on_a_dask_group_answers_from_its_workers(
    server, remote_echo, two_workers, monkeypatch, capsys
):
    address, worker_pids = two_workers
    svc = remote_echo

    answer = _ask(svc, (2, 3))
    assert answer["sum"] == 5
    instances = _running(svc)
    assert len(instances) == 2
    # each instance's process descends from a worker process of the group, one on each worker; the server
    # has several users, so it runs in bubblewrap there, as local instances do
    hosts = [[p.pid for p in psutil.Process(i.pid).parents() if p.pid in worker_pids.values()] for i in instances]
    assert sorted(h[0] for h in hosts) == sorted(worker_pids.values())
    for i in instances:
        assert psutil.Process(i.pid).cmdline()[1:3] == ["-m", "pai_lab.serving.instance"]
        assert psutil.Process(i.pid).parent().name() == "bwrap"
    from distributed import Client

    with Client(address, timeout="30s") as client:
        assert {i.worker for i in instances} == set(client.scheduler_info()["workers"])
    assert all(i.host_ip == "127.0.0.1" and i.inner_ip.startswith("127.0.0.1:") for i in instances)

    from pai_lab.cli import main

    monkeypatch.setenv("PAI_LAB_URL", server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", USER_TOKENS["ops"])
    capsys.readouterr()
    assert main(["eascmd", "w", svc.name, "-w", "on_workers", "--json"]) == 0
    shown = {i["name"]: i for i in json.loads(capsys.readouterr().out)}
    assert {n: i["worker"] for n, i in shown.items()} == {i.name: i.worker for i in instances}
    assert main(["eascmd", "w", svc.name, "-w", "on_workers"]) == 0
    table = capsys.readouterr().out
    assert all(i.inner_ip in table for i in instances)  # INNER_IP: where the gateway reaches it


def test_a_service_of_a_workspace_on_the_default_group_stays_in_the_gateway(server, two_workers, tmp_path):
    here = (
        server.client("ops")
        .workspace("default")
        .services.create(_spec(tmp_path, "in_gateway_echo", "a", 1), timeout=240, progress=False)
    )
    (mine,) = here.instances()
    assert mine.worker == "" and mine.inner_ip.startswith("unix:")
    assert not {p.pid for p in psutil.Process(mine.pid).parents()} & set(two_workers[1].values())
    assert _ask(here, (1,))["sum"] == 1
    here.delete()


def test_an_instance_on_a_worker_cannot_read_the_servers_state_nor_hold_its_credentials(server, tmp_path):
    """The server has several users, so a member's processor on a resource group's worker runs in bubblewrap
    there, as on the server's own machine (a worker may share it, as here): the state folder is hidden (the
    owner's token in server.json, the store), the root is read-only, the worker's cloud credentials are
    gone and the SDKs' default files point at nothing; its own folder reads as usual."""
    folder = tmp_path / "reader"
    folder.mkdir()
    (folder / "app.py").write_text(PROBE_PROCESSOR)
    ws = server.client("dev").workspace("on_workers")
    spec = {**_spec(tmp_path, "test_worker_reader", "r", 1), "processor_path": str(folder)}
    svc = ws.services.create({**spec, "processor_mainclass": "Reader"}, timeout=240, progress=False)
    try:
        (instance,) = _running(svc)
        assert instance.worker
        state = server.root / ".pai_lab"
        asked = [str(state / "server.json"), str(state / "pai.db"), str(folder / "app.py")]
        resp = requests.post(
            svc.endpoint,
            data=json.dumps({"read": asked, "write": str(server.root / "planted.txt")}),
            headers={"Authorization": svc.token},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        assert server.token not in resp.text
        seen = resp.json()
        for hidden in asked[:2]:
            assert seen[hidden].startswith("refused: ") and "No such file" in seen[hidden], seen
        assert "class Reader" in seen[asked[2]], seen
        assert seen["write"].startswith("refused: ") and not (server.root / "planted.txt").exists(), seen
        env = seen["env"]
        assert not set(WORKER_CREDENTIALS) & set(env), env
        assert env["AWS_SHARED_CREDENTIALS_FILE"] == env["AWS_CONFIG_FILE"] == os.devnull, env
        assert "PAI_LAB_INSTANCE_TOKEN" not in env, env  # read and dropped before the member's code loads
        assert psutil.Process(instance.pid).parent().name() == "bwrap"
    finally:
        svc.delete()


def test_blue_green_release_on_workers_keeps_answering(server, remote_echo, tmp_path):
    ws = server.client("ops").workspace("on_workers")
    blue = remote_echo
    green = ws.services.create(_spec(tmp_path, "on_workers_echo", "b", 1), relate=True, timeout=240, progress=False)
    assert green.name.startswith("on_workers_echo_") and _running(green)[0].worker
    body = json.dumps({"values": [1, 1]}).encode()
    load = Load(blue.endpoint, body, {"Authorization": blue.token}, threads=3)
    try:
        green.release(50)
        until(lambda: {_ask(blue)["tag"] for _ in range(10)} == {"a", "b"}, timeout=60)
        green.release(100)
        until(lambda: {_ask(blue)["tag"] for _ in range(6)} == {"b"}, timeout=60)
    finally:
        codes = load.stop()
    assert set(codes) == {200} and codes[200] > 0, codes
    green.delete()


BATCHING_SUMMER = """
import json, os, time


class Summer:
    def process(self, data):
        return self.process_batch([data])[0]

    def process_batch(self, datas):
        time.sleep(0.05)  # one model call for the whole batch
        requests = [json.loads(d) for d in datas]
        return [{"sum": sum(r["values"]), "batch": len(datas), "pid": os.getpid()} for r in requests]
"""


def test_requests_to_an_instance_on_a_worker_are_batched_as_for_a_local_one(server, two_workers, tmp_path):
    folder = tmp_path / "summer"
    folder.mkdir()
    (folder / "app.py").write_text(BATCHING_SUMMER)
    spec = {
        "name": "on_workers_summer",
        "processor_type": "python",
        "processor_path": str(folder),
        "processor_entry": "app.py",
        "metadata": {
            "instance": 1,
            "workers": 1,
            "rpc": {"batching": True, "max_batch_size": 8, "max_batch_timeout": 50},
        },
    }
    svc = server.client("ops").workspace("on_workers").services.create(spec, timeout=240, progress=False)
    try:
        (instance,) = _running(svc)
        assert instance.worker and _host_of(instance, two_workers) in two_workers[1].values()
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: (i, _ask(svc, (i, i, 1))), range(48)))
        assert all(answer["sum"] == 2 * i + 1 for i, answer in answers)  # each caller its own answer
        assert len({answer["pid"] for _, answer in answers}) == 1  # all from the one instance on the worker
        sizes = [answer["batch"] for _, answer in answers]
        assert 1 < max(sizes) <= 8, sizes  # grouped over the network as locally, never past the limit
    finally:
        svc.delete()


def test_gpu_and_memory_place_instances_by_the_workers_resources_and_memory_is_enforced_there(
    server, two_workers, tmp_path
):
    ws = server.client("ops").workspace("on_workers")
    spec = _spec(tmp_path, "on_workers_gpu", "g", 1)
    spec["metadata"].update(gpu=1, memory=300)
    svc = ws.services.create(spec, timeout=240, progress=False)
    (instance,) = _running(svc)
    assert _host_of(instance, two_workers) == two_workers[1]["w2"]  # the only worker with a GPU
    assert _ask(svc)["cuda"] == "0"  # the worker's one GPU, as CUDA_VISIBLE_DEVICES names it

    svc.scale(2)  # the second one needs another GPU: none is free, so it waits and says why
    waiting = until(lambda: [i for i in svc.instances() if i.name != instance.name and i.status == "Pending"], 60)
    assert "resource group workers with GPU=1" in waiting[0].reason
    svc.scale(1)

    # above metadata.memory on its worker: killed there, recorded as OOMKilled, started again
    resp = requests.post(svc.endpoint, data=json.dumps({"grow": 500}), headers={"Authorization": svc.token})
    assert resp.status_code in (200, 503), resp.text  # killed while answering, or just after

    def again():
        ready = [i for i in _running(svc) if i.restarts >= 1]
        return ready[0] if ready else None

    restarted = until(again, 120)
    assert restarted.last_state["reason"] == "OOMKilled" and restarted.last_state["exitCode"] == 137
    assert _ask(svc, (1, 1))["sum"] == 2
    svc.delete()


def test_a_worker_killed_under_load_has_its_instance_replaced_and_only_held_requests_fail(remote_echo, two_workers):
    _, worker_pids = two_workers
    svc = remote_echo
    until(lambda: len(_running(svc)) == 2, timeout=120)
    victim = _running(svc)[0]
    survivor = next(i for i in _running(svc) if i.name != victim.name)
    worker_pid = _host_of(victim, two_workers)
    assert worker_pid in worker_pids.values()
    threads = 4
    body = json.dumps({"values": [1, 2, 3], "sleep": 0.05}).encode()
    load = Load(svc.endpoint, body, {"Authorization": svc.token}, threads=threads)
    try:
        until(lambda: sum(load.codes.values()) > 20, timeout=60)
        os.kill(worker_pid, signal.SIGKILL)

        def replaced():
            ready = {i.name: i for i in _running(svc) if i.ready == "[1/1]"}
            again = ready.get(victim.name)
            return again if again is not None and again.pid != victim.pid and len(ready) == 2 else None

        # restarted on the worker that is left, as a new process there
        again = until(replaced, timeout=180)
        answered = sum(load.codes.values())
        until(lambda: sum(load.codes.values()) > answered + 20, timeout=60)
    finally:
        codes = load.stop()
    assert again.worker == survivor.worker != victim.worker
    assert again.pid != victim.pid and _host_of(again, two_workers) != worker_pid
    assert again.last_state and again.last_state["exitCode"] == 137
    failed = {c: n for c, n in codes.items() if c != 200}
    # each load thread has one request in flight: at most that many were held by the dead instance
    assert sum(failed.values()) <= threads and set(failed) <= {503}, codes
    assert codes[200] > 40, codes
    assert _ask(svc, (5,))["sum"] == 5


def test_a_workspace_moving_to_the_group_takes_its_services_to_the_workers_and_back(server, tmp_path):
    server.client().create_workspace("movable")
    server.client().workspace("movable").members.add("ops", ["AlgorithmOps"])
    ws = server.client("ops").workspace("movable")
    svc = ws.services.create(_spec(tmp_path, "movable_echo", "m", 1), timeout=240, progress=False)
    assert _running(svc)[0].worker == ""
    body = json.dumps({"values": [2]}).encode()
    load = Load(svc.endpoint, body, {"Authorization": svc.token}, threads=2)
    try:
        server.client().workspace("movable").set_resource_group("workers")
        moved = until(lambda: _settled(svc, on_workers=True), 180)
        assert moved[0].inner_ip.startswith("127.0.0.1:")
        server.client().workspace("movable").set_resource_group("default")
        back = until(lambda: _settled(svc, on_workers=False), 180)
        assert back[0].inner_ip.startswith("unix:")
    finally:
        codes = load.stop()
    assert set(codes) == {200} and codes[200] > 0, codes  # rolled over: the old instance served meanwhile
    svc.delete()


@pytest.fixture(scope="module")
def blind_worker(tmp_path_factory):
    """A scheduler and one worker that sees none of the test's files (its own mount namespace, with an
    empty folder over pytest's temporary folder), as a worker on another machine would."""
    import shutil
    import tempfile

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding the test's files from a worker needs root and unshare (util-linux)")
    hidden = str(tmp_path_factory.getbasetemp())
    own = Path(tempfile.mkdtemp(prefix="pai-blind-worker-"))  # outside what it cannot see

    def unshared(worker: str) -> list[str]:
        script = f"mount -t tmpfs none {hidden} && exec {worker}"
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    try:
        with scheduler_and_worker(own, wrap=unshared) as (address, _pid):
            yield address
    finally:
        shutil.rmtree(own, ignore_errors=True)


def test_a_worker_that_does_not_see_the_servers_files_gets_them_from_the_gateway(server, blind_worker, tmp_path):
    server.client().resource_groups.add("blind", blind_worker)
    server.client().create_workspace("far_away")
    server.client().workspace("far_away").members.add("ops", ["AlgorithmOps"])
    server.client().workspace("far_away").set_resource_group("blind")
    ws = server.client("ops").workspace("far_away")
    svc = ws.services.create(_spec(tmp_path, "far_echo", "far", 1), timeout=240, progress=False)
    (instance,) = _running(svc)
    assert instance.worker
    # the instance runs its own copy of the processor: the folder the server named is not there
    cwd_files = psutil.Process(instance.pid).cmdline()[-1]
    assert str(tmp_path) not in json.loads(cwd_files)["processor_dir"]
    answer = _ask(svc, (7, 8))
    assert answer["sum"] == 15 and answer["tag"] == "far"
    assert psutil.Process(instance.pid).parent().name() == "bwrap"  # the copy is shown in its sandbox
    svc.delete()
