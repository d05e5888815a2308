"""A Dask cluster on other hosts: a scheduler on host a and a worker on each of hosts b and c, every host a
network namespace with an address of its own and a mount namespace that hides the control plane's state
folder and the test's files. pai_lab is pointed at the scheduler's address as a user would; data and the
model go through the S3 server on the hosts' network only."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psutil
import pytest

from tests import netns_hosts
from tests.conftest import start_pai_server
from tests.fixtures.s3 import S3_CREDENTIALS
from tests.fixtures.training import RANK_SCRIPT, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "training"
DIGITS = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    why = netns_hosts.unavailable()
    if why:
        pytest.skip(why)
    # every file of the test (the server's root and state folder included) is hidden from the hosts
    with netns_hosts.Hosts(["a", "b", "c"], hide=[tmp_path_factory.getbasetemp()]) as made:
        yield made


@pytest.fixture(scope="module")
def hosts_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hosts-logs")


@pytest.fixture(scope="module")
def scheduler(hosts, hosts_logs):
    with netns_hosts.dask_on_hosts(hosts, hosts_logs, scheduler="a", workers=("b", "c")) as address:
        yield address


@pytest.fixture(scope="module")
def hosts_s3(hosts):
    """A moto S3 server on the bridge's address: the one place the hosts and the control plane share."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind((hosts.gateway, 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address=hosts.gateway, port=port, verbose=False)
    server.start()
    yield f"http://{hosts.gateway}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def remote_server(scheduler, tmp_path_factory):
    server = start_pai_server(tmp_path_factory.mktemp("remote") / "root", "--dask-scheduler", scheduler)
    yield server
    server.stop()


@pytest.fixture
def rank_code(tmp_path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "rank.py").write_text(RANK_SCRIPT)
    return folder


def _bucket(endpoint: str, name: str) -> dict:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["key"],
        aws_secret_access_key=S3_CREDENTIALS["secret"],
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return {
        "key": S3_CREDENTIALS["key"],
        "secret": S3_CREDENTIALS["secret"],
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }


def _job_processes(hosts, host: str, job_id: str) -> list[int]:
    found = []
    for pid in hosts.pids(host):
        try:
            if psutil.Process(pid).environ().get("PAI_LAB_JOB_ID") == job_id:
                found.append(pid)
        except psutil.Error:
            continue
    return found


@pytest.mark.s3
@pytest.mark.tf
def test_a_two_rank_job_trains_on_two_hosts_over_s3_only(hosts, remote_server, hosts_s3, unique_name):
    import s3fs

    ws = remote_server.client().workspace("default")
    bucket = unique_name("hosts").replace("_", "-").lower()
    options = _bucket(hosts_s3, bucket)
    # the workspace's storage: the ranks get its options to write the job's model, not the server's env
    ws.set_storage(f"s3://{bucket}/store/", options)
    fs = s3fs.S3FileSystem(**options)
    sample = ws.datasets.register(unique_name("digits"), "sample://digits")
    lines = [line for line in sample.manifest()][::12]
    for line in lines:  # one folder per class, on S3 only
        answer = next(v for k, v in line.items() if k.startswith("label-"))
        source = Path(line["data"]["source"])
        fs.pipe(f"{bucket}/digits/{answer['results'][0]['data']}/{source.name}", source.read_bytes())
    data = unique_name("s3digits")
    ws.datasets.register(data, f"s3://{bucket}/digits/", scan=True, glob="*.png", storage_options=options)

    job = ws.jobs.submit(
        name="two-hosts",
        workers=2,
        code_source=str(EXAMPLES),
        data_sources=[data],
        checkpointDir=f"s3://{bucket}/store/ckpt/",
        command="python /root/code/digits_classifier.py --epochs=2",
    )
    job.wait(timeout=240, poll=0.5)
    assert job.state == "Succeeded", job.reason + "\n" + (job.logs(None) or "")[-3000:]
    # one rank on each worker host, at the hosts' own addresses (TF_CONFIG's, over which the gradients went)
    assert sorted(p.host for p in job.pods) == [hosts.address("b"), hosts.address("c")]
    assert all(p.worker.startswith(f"tcp://{p.host}:") for p in job.pods)
    assert "training and" in job.logs(0)  # the ranks' logs and metrics came back through Dask
    assert set(job.metrics()["pod"]) == {f"{job.id}-worker-0"}

    # the model went to S3 (no folder is shared) and is registered from there
    model = ws.models.get(job.id)
    assert model.path == f"s3://{bucket}/store/ckpt/model"
    assert fs.exists(f"{bucket}/store/ckpt/model/saved_model.pb")
    assert json.loads(fs.cat(f"{bucket}/store/ckpt/model/class_names.json")) == DIGITS
    assert not (remote_server.root / ".pai_lab" / "jobs" / job.id / "output" / "model").exists()


def test_a_host_killed_mid_job_fails_the_job_and_ends_the_other_rank(
    hosts, hosts_logs, scheduler, remote_server, rank_code
):
    ws = remote_server.client().workspace("default")
    job = ws.jobs.submit(
        name="lose-a-host",
        workers=2,
        code_source=str(rank_code),
        command="python /root/code/rank.py --mode=sleep",
    )
    wait_for(lambda: len({p.host for p in job.refresh().pods if p.state == "Running"}) == 2, 120)
    on = {p.host: p.name for p in job.pods}
    b, c = hosts.address("b"), hosts.address("c")
    assert set(on) == {b, c}
    assert wait_for(lambda: _job_processes(hosts, "b", job.id), 30)

    try:
        hosts.kill("c")  # host c goes down with its worker and its rank
        job.wait(timeout=90, poll=0.3)
        lost_worker = next(p.worker for p in job.pods if p.host == c)
        assert job.state == "Failed", job.reason
        assert lost_worker in job.reason and "left the cluster" in job.reason
        states = {p.host: p.state for p in job.pods}
        assert states == {b: "Stopped", c: "Failed"}
        assert _job_processes(hosts, "b", job.id) == []  # no orphan on the host that stayed

        # the cluster takes the next job on the host that is left
        after = ws.jobs.submit(
            name="after-the-loss", workers=1, code_source=str(rank_code), command="python /root/code/rank.py"
        )
        after.wait(timeout=120, poll=0.3)
        assert after.state == "Succeeded", after.reason
        assert [p.host for p in after.pods] == [b]
        tf_config = json.loads(next(x for x in after.logs(0).splitlines() if x.startswith("tf_config="))[10:])
        assert tf_config["cluster"]["worker"] == [f"{b}:{after.pods[0].port}"]  # the host's address, not loopback
    finally:  # host c back for the other tests
        netns_hosts.start_worker(hosts, "c", scheduler, hosts_logs)
        netns_hosts.wait_for_workers(scheduler, 2)
