"""GPU pinning of service instances (metadata.gpu), on a machine that declares three GPUs:
there is no GPU here, so the inventory is given as PAI_LAB_GPUS, as one would restrict a shared
machine; what is checked is what each instance process is given."""

from __future__ import annotations

import contextlib

import psutil

from tests.conftest import start_pai_server
from tests.fixtures.serving import until


def _pinned(svc) -> dict[str, str]:
    return {
        i.name: psutil.Process(i.pid).environ().get("CUDA_VISIBLE_DEVICES")
        for i in svc.instances()
        if i.status == "Running"
    }


@contextlib.contextmanager
def gpu_server(tmp_path, python_processor, monkeypatch, gpus: str):
    """A `pai server` whose machine declares ``gpus``; yields (workspace client, python service spec)."""
    monkeypatch.setenv("PAI_LAB_GPUS", gpus)
    server = start_pai_server(tmp_path / "root")
    try:
        spec = {"processor_type": "python", "processor_path": str(python_processor), "processor_entry": "app.py"}
        yield server.client().workspace("default"), spec
    finally:
        server.stop()


def test_instances_get_their_own_gpus_and_wait_when_none_is_free(tmp_path, python_processor, monkeypatch):
    with gpu_server(tmp_path, python_processor, monkeypatch, "0,1,2") as (ws, spec):
        gpu = ws.services.create({"name": "on_gpus", **spec, "metadata": {"instance": 2, "gpu": 1}})
        pinned = until(lambda: p if len(p := _pinned(gpu)) == 2 else None)
        assert sorted(pinned.values()) in (["0", "1"], ["0", "2"], ["1", "2"])
        assert {i.name: ",".join(map(str, i.gpus)) for i in gpu.instances()} == pinned
        assert gpu.predict({"values": [1, 2]}) == {"sum": 3, "n": 2}

        cpu = ws.services.create({"name": "on_cpu", **spec, "metadata": {"instance": 1}})
        assert list(until(lambda: _pinned(cpu)).values()) == [""]  # asked for none: sees none

        gpu.scale(4)  # three GPUs: the fourth instance waits for one, with the reason shown
        waiting = until(
            lambda: (
                [i for i in gpu.instances() if i.status == "Pending" and "waiting for 1 GPU" in i.reason]
                if len(_pinned(gpu)) == 3
                else None
            )
        )
        assert len(waiting) == 1 and "0 of 3 free" in waiting[0].reason
        assert sorted(_pinned(gpu).values()) == ["0", "1", "2"]

        gpu.scale(2)  # freed GPUs go back to the pool: a new service can have two of them
        until(lambda: len(gpu.instances()) == 2 and len(_pinned(gpu)) == 2)
        big = ws.services.create({"name": "two_gpus", **spec, "metadata": {"instance": 1, "gpu": 2}}, wait=False)
        reason = until(lambda: next((i.reason for i in big.instances() if "waiting for 2 GPU" in i.reason), None))
        assert "1 of 3 free" in reason
        gpu.delete()
        assert next(iter(until(lambda: _pinned(big)).values())) in ("0,1", "0,2", "1,2")

        huge = ws.services.create({"name": "four_gpus", **spec, "metadata": {"instance": 1, "gpu": 4}}, wait=False)
        reason = until(lambda: next((i.reason for i in huge.instances() if i.reason), None))
        assert reason == "metadata.gpu asks for 4 GPU(s); this machine has 3"


def test_a_new_version_takes_over_the_gpus_the_old_one_holds(tmp_path, python_processor, monkeypatch):
    # one GPU, named by its UUID as schedulers hand them out, held by the running version
    with gpu_server(tmp_path, python_processor, monkeypatch, "GPU-5f1c2a90-7d3e-4b8a-9c11-0e2f6a7b8c9d") as (ws, spec):
        svc = ws.services.create({"name": "one_gpu", **spec, "metadata": {"instance": 1, "gpu": 1}})
        (old,) = until(lambda: p if len(p := _pinned(svc)) == 1 else None)

        svc.modify({"metadata": {"workers": 3}})  # new instances replace the old: they need the only GPU
        pinned = until(lambda: p if len(p := _pinned(svc)) == 1 and old not in p else None, timeout=60)
        assert list(pinned.values()) == ["GPU-5f1c2a90-7d3e-4b8a-9c11-0e2f6a7b8c9d"]
        assert [i.name for i in svc.instances()] == list(pinned)  # the old instance gave its GPU up and left
        svc.wait(progress=False)  # pinned is not yet ready: the new instance still loads its processor
        assert svc.predict({"values": [1, 2]}) == {"sum": 3, "n": 2}


def test_the_gpu_inventory_keeps_the_names_cuda_was_given(monkeypatch):
    from pai_lab.serving.gateway.core import detect_gpus

    monkeypatch.delenv("PAI_LAB_GPUS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa11, MIG-bb22")
    assert detect_gpus() == ["GPU-aa11", "MIG-bb22"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert detect_gpus() == ["2", "3"]
    monkeypatch.setenv("PAI_LAB_GPUS", "")  # declared: none, whatever CUDA_VISIBLE_DEVICES says
    assert detect_gpus() == []
