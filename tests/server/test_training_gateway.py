"""Jobs on clusters a real Dask Gateway gives (dask-gateway-server, local backend, basic auth): the default
group's cluster from `TrainingManager.dask_gateway`, a resource group of its own from a second entry in
`TrainingManager.resource_groups`, both set in the `jupyter_server_config.py` an operator writes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import start_pai_server
from tests.fixtures.gateway import gateway_clusters
from tests.fixtures.training import wait_for


def _settings(gateway: dict, user: str, **more) -> dict:
    return {
        "address": gateway["address"],
        "proxy_address": gateway["proxy_address"],
        "auth": "basic",
        "auth_kwargs": {"username": user, "password": gateway["password"]},
        **more,
    }


def _config_dir(folder, **traits) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"c.TrainingManager.{name} = {json.dumps(value)}" for name, value in traits.items()]
    (folder / "jupyter_server_config.py").write_text("\n".join(lines) + "\n")
    return str(folder)


def _lines(job, pod: str) -> list[str]:
    return [x.line for x in job.log_lines(f"{job.id}-{pod}")]


# dask-gateway's client closes itself again when collected, after its loop has ended, and says so
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_jobs_run_on_clusters_a_dask_gateway_starts_and_stop_with_the_server(
    dask_gateway_server, rank_script, tmp_path, monkeypatch
):
    gateway = dask_gateway_server
    config = _config_dir(
        tmp_path / "jupyter",
        dask_gateway=_settings(gateway, "team-default", cluster_options={"worker_cores": 2}, workers=1),
        resource_groups={
            "burst": _settings(gateway, "team-burst", workers=1),
            # an option this gateway does not offer: its jobs wait, saying which options it has
            "odd": _settings(gateway, "team-odd", cluster_options={"worker_gpus": 1}, workers=1),
        },
    )
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", config)
    server = start_pai_server(tmp_path / "root", timeout=120)
    try:
        client = server.client()
        ws = client.workspace("default")
        job = ws.jobs.submit(name="on-gateway", command=f"python {rank_script} --mode=flags --lines=3", workers=2)
        job.wait(timeout=240, poll=0.5)
        assert job.state == "Succeeded", job.reason
        for rank in ("worker-0", "worker-1"):
            lines = _lines(job, rank)
            assert "line-00002" in lines and any(x.startswith("tf_config=") and "worker" in x for x in lines)
        # the default group is the gateway's cluster: its scheduler behind the gateway's proxy, one
        # worker with the two cores the cluster options asked for
        info = client.http.get("/cluster")
        assert info["scheduler_address"].startswith(f"gateway://{gateway['proxy_address']}/")
        assert [w["cores"] for w in info["workers"]] == [2]
        assert {p.worker for p in job.pods} == {info["workers"][0]["address"]}
        assert [c.name for c in gateway_clusters(gateway, "team-default")] == [
            info["scheduler_address"].rsplit("/", 1)[1]
        ]

        # a workspace that chooses the gateway group runs its ranks on that group's own cluster
        team = client.create_workspace("burst_team")
        assert team.set_resource_group("burst") == "burst"
        second = team.jobs.submit(name="on-burst", command=f"python {rank_script} --mode=flags --lines=2", workers=1)
        second.wait(timeout=240, poll=0.5)
        assert second.state == "Succeeded", second.reason
        assert "line-00001" in _lines(second, "worker-0")
        burst = client.resource_groups.get("burst")
        assert burst.status == "ResourceReady" and burst.source == "configured"
        assert burst.scheduler_address.startswith(f"gateway://{gateway['proxy_address']}/")
        assert {p.worker for p in second.pods} == {w.address for w in burst.workers}
        assert len(gateway_clusters(gateway, "team-burst")) == 1

        odd = client.create_workspace("odd_team")
        odd.set_resource_group("odd")
        waiting = odd.jobs.submit(name="on-odd", command=f"python {rank_script} --mode=flags", workers=1)
        reason = wait_for(lambda: "worker_gpus" in (r := waiting.refresh().reason) and r, 60)
        assert waiting.state == "Queuing" and "it offers worker_cores" in reason, reason
        assert waiting.stop().state == "Stopped"
        assert gateway_clusters(gateway, "team-odd") == []
    finally:
        assert server.stop() == 0
    # the server shuts down the clusters it started (shutdown_on_close, the default)
    wait_for(lambda: not gateway_clusters(gateway, "team-default") and not gateway_clusters(gateway, "team-burst"), 60)


@pytest.mark.parametrize(
    ("traits", "said"),
    [
        ({"dask_gateway": {"address": "http://127.0.0.1:1", "workers": -1}}, "TrainingManager.dask_gateway: workers"),
        (
            {"resource_groups": {"burst": {"address": "http://127.0.0.1:1", "workerz": 2}}},
            "TrainingManager.resource_groups['burst']: workerz: Extra inputs are not permitted",
        ),
        ({"dask_gateway": {"address": "ftp://127.0.0.1:1"}}, "address 'ftp://127.0.0.1:1': give the gateway's"),
    ],
)
def test_bad_gateway_settings_stop_the_server_with_the_key_to_fix(traits, said, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", _config_dir(tmp_path / "jupyter", **traits))
    with pytest.raises(RuntimeError) as refused:
        start_pai_server(tmp_path / "root")
    assert said in str(refused.value)
