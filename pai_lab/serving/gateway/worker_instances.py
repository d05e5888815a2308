"""The second instance launcher: an instance hosted on a worker of a resource group's Dask cluster.

A service whose workspace runs on a resource group with its own scheduler gets ``placement`` in its
spec (:func:`pai_lab.serving.placement.placement_of`). Each of its instances is then a Dask task
(:func:`pai_lab.serving.worker_task.run_instance`) with the service's resource restrictions (``GPU``
for ``metadata.gpu``; ``MEMORY`` in bytes for ``metadata.memory`` when the group's workers declare
it). The task reports the TCP address its instance listens on (in a Dask variable of that one
launch); the gateway connects, answers the instance's challenge (HMAC-SHA256 of the nonce the instance
sends, keyed with the token made for that one start, which reached the worker inside the task's
arguments: the token itself never crosses the connection), and from then on the instance is driven
exactly as a local one: the same
frames, queue, batching, rollouts and restarts (:mod:`pai_lab.serving.gateway.instance_runtime`).

:class:`RemoteProcess` stands where a local instance has its ``subprocess.Popen``: ``poll``,
``terminate``, ``kill`` and ``pid``. The Dask clients are synchronous, each with its own thread, and
called off the event loop, so the request path never waits on the scheduler."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import secrets
import socket
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pai_lab.resources.workers import scheduler_workers
from pai_lab.serving.gateway.errors import LoadFailed, NotReady
from pai_lab.serving.instance import CHALLENGE_BYTES
from pai_lab.serving.worker_task import channel_of, run_instance

if TYPE_CHECKING:
    from pai_lab.serving.gateway.instance_runtime import Instance

LOST_GRACE_S = 1.0  # after its connection drops, how long the task's own exit code is waited for
WAIT_STEP_S = 2.0
CHALLENGE_TIMEOUT_S = 30.0
MAX_SHIPPED_BYTES = 256 << 20  # model and processor files sent to a worker that does not see them
# the blocking Dask calls (submit, waiting for a worker) run here, never on the event loop or its default pool
_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="pai-dask")
_clients: dict[str, Any] = {}
# the worker an instance's start aims at (by id of the Instance), until the start ends either way
_aims: dict[int, str] = {}
_aim_lock = threading.Lock()
_clients_lock = threading.Lock()


def client_of(address: str):
    """The gateway's Dask client of a resource group's scheduler (made once, blocking: call off the loop)."""
    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status not in ("closed", "closing"):
            return client
        from distributed import Client

        client = Client(address, timeout="30s", set_as_default=False)
        _clients[address] = client
        return client


def close_clients() -> None:
    with _clients_lock:
        for client in _clients.values():
            try:
                client.close(timeout=5)
            except Exception:  # noqa: BLE001, S110 - closing at exit: the scheduler may be gone
                pass
        _clients.clear()


class RemoteProcess:
    """An instance on a Dask worker, seen through its task's future and the gateway's connection."""

    remote = True

    def __init__(self, inst: Instance, future, address: dict, writer: asyncio.StreamWriter):
        self.inst = inst
        self.future = future
        self.pid: int = address["pid"]
        self.host: str = address["host"]
        self.port: int = address["port"]
        self.worker: str = address["worker"]
        self.writer = writer
        self.returncode: int | None = None
        self._lost_at: float | None = None
        future.add_done_callback(self._ended)  # runs in the client's thread

    def _ended(self, future) -> None:
        try:
            result = future.result() if future.status == "finished" else None
        except Exception:  # noqa: BLE001 - the task failed or its worker died: the instance is gone
            result = None
        if result and result.get("oom"):
            self.inst.oom = True
        self.returncode = int(result["code"]) if result else -9

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if not self.writer.is_closing():
            return None
        # the connection is gone: the instance ended (its code comes with the task's result), or its
        # worker died (the scheduler would run the task again elsewhere: the gateway replaces it itself)
        now = time.monotonic()
        self._lost_at = self._lost_at or now
        if now - self._lost_at >= LOST_GRACE_S and self.future.status != "finished":  # else its result is coming
            self.kill()
        return self.returncode

    def terminate(self) -> None:
        self.writer.close()  # the instance exits when the gateway goes away

    def kill(self) -> None:
        self.writer.close()
        if self.returncode is None:
            self.returncode = -9
        self.future.cancel()


def _resources(generation: dict, workers: dict) -> dict[str, float] | None:
    wanted: dict[str, float] = {}
    if generation.get("gpu"):
        wanted["GPU"] = int(generation["gpu"])
    memory = generation.get("memory")
    if memory and any("MEMORY" in (w.get("resources") or {}) for w in workers.values()):
        wanted["MEMORY"] = int(memory) * 1024 * 1024
    return wanted or None


def _has(declared: dict, wanted: dict) -> bool:
    return all(declared.get(name, 0) >= amount for name, amount in wanted.items())


def _submit(inst: Instance, launch: dict):
    """Submit the instance's task (blocking); instances of one service spread over the workers."""
    placement = inst.generation["placement"]
    client = client_of(placement["scheduler"])
    workers = scheduler_workers(client)
    resources = _resources(inst.generation, workers)
    # a preferred worker must have the resources: a loose restriction can otherwise run the task on a
    # worker that lacks them, where Dask's accounting fails with a KeyError for the resource
    able = [w for w, info in workers.items() if _has(info.get("resources") or {}, resources or {})]
    with _aim_lock:  # siblings starting at once see each other's aim before either has a worker
        siblings = [i for i in (*inst.service.instances, *inst.service.incoming) if i is not inst]
        taken = {getattr(i.proc, "worker", None) or _aims.get(id(i)) for i in siblings}
        others = sorted(w for w in able if w not in taken)
        if others:
            _aims[id(inst)] = others[0]
    return client.submit(
        run_instance,
        launch,
        key=f"pai-serving-{inst.name}-{launch['launch_id']}",
        pure=False,
        resources=resources,
        workers=others[:1] or None,
        allow_other_workers=bool(others),  # a preference: any worker with the resources when all host one
    )


def _address(inst: Instance, future, channel: str) -> dict | None:
    """Where the task's instance listens (blocking, in steps): None once the instance is stopped."""
    from distributed import Variable

    reported = Variable(channel, client=future.client)
    try:
        return _wait_for_address(inst, future, reported)
    finally:
        reported.delete()  # one launch's report: nothing of it stays on the scheduler


def _wait_for_address(inst: Instance, future, reported) -> dict | None:
    while not inst.stopped:
        if future.status == "finished":
            ended = future.result(timeout=30)
            if ended.get("missing"):
                raise _Missing(ended["missing"])
            if ended.get("failed"):  # the worker cannot run it as the server's rule says: an operator must act
                raise LoadFailed(ended["failed"], True)
            raise NotReady(f"the instance's task ended (exit {ended.get('code')}) before its instance listened")
        if future.status in ("error", "cancelled", "lost"):
            try:
                future.result(timeout=10)
            except Exception as exc:  # the task's failure is the instance's
                raise LoadFailed(f"the instance's task failed on the Dask worker: {exc}", False) from exc
            raise NotReady("the instance's task ended before its instance listened")
        try:
            return reported.get(timeout=WAIT_STEP_S)
        except (TimeoutError, asyncio.TimeoutError):
            continue
    return None


async def spawn(inst: Instance) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, RemoteProcess]:
    """Start ``inst`` on a worker of its resource group and connect to it (its challenge answered first)."""
    try:
        return await _spawn(inst)
    finally:
        with _aim_lock:
            _aims.pop(id(inst), None)  # started (its proc names the worker now) or failed


async def _spawn(inst: Instance) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, RemoteProcess]:
    placement = inst.generation["placement"]
    launch_id, token = secrets.token_hex(4), secrets.token_hex(32)
    launch = {
        "name": inst.name,
        "launch_id": launch_id,
        "channel": channel_of(inst.name, launch_id),
        "token": token,
        "config": inst.config,
        "workers": inst.concurrency,
        "cpu": inst.generation.get("cpu"),
        "memory": inst.generation.get("memory"),
        "gpu": inst.generation.get("gpu"),
        "sandbox": inst.generation.get("sandbox"),  # the server's rule, for the worker to apply
    }
    loop = asyncio.get_running_loop()
    needs = _describe_needs(inst.generation)
    inst.reason = f"waiting for a worker of resource group {placement['group']}{needs}"
    if "shipped" in inst.generation:  # a worker of this group lacked the files before: send them at once
        launch["files"] = inst.generation["shipped"]
    future = await loop.run_in_executor(_pool, _submit, inst, launch)
    try:
        try:
            address = await loop.run_in_executor(_pool, _address, inst, future, launch["channel"])
        except _Missing as missing:  # the worker does not see the server's paths: ship the files
            inst.reason = f"sending the instance's files ({', '.join(missing.keys)}) to the worker"
            shipped = await loop.run_in_executor(_pool, pack, inst.config, missing.keys)
            inst.generation["shipped"] = launch["files"] = shipped
            future = await loop.run_in_executor(_pool, _submit, inst, launch)
            address = await loop.run_in_executor(_pool, _address, inst, future, launch["channel"])
        if address is None:
            raise NotReady(f"instance {inst.name} was stopped while waiting for a worker")
        inst.reason = "ContainerCreating"
        reader, writer = await asyncio.open_connection(address["host"], address["port"], limit=1 << 26)
        try:
            nonce = await asyncio.wait_for(reader.readexactly(CHALLENGE_BYTES), CHALLENGE_TIMEOUT_S)
        except (asyncio.IncompleteReadError, TimeoutError, asyncio.TimeoutError) as exc:
            writer.close()
            raise NotReady(f"the instance on {address['worker']} sent no challenge ({type(exc).__name__})") from None
        except BaseException:
            writer.close()
            raise
    except BaseException:
        future.cancel()
        raise
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(answer(token, nonce))
    return reader, writer, RemoteProcess(inst, future, address, writer)


def answer(token: str, nonce: bytes) -> bytes:
    """What proves the token to an instance without sending it: HMAC-SHA256 of its nonce."""
    return hmac.new(token.encode(), nonce, hashlib.sha256).digest()


class _Missing(Exception):
    def __init__(self, keys: list[str]):
        super().__init__(", ".join(keys))
        self.keys = keys


def pack(config: dict, keys: list[str]) -> dict[str, dict]:
    """The instance's files a worker lacks, zipped: a folder's regular files (none a link leads out of),
    or one file. Refused past MAX_SHIPPED_BYTES: such a model belongs in a folder the workers share."""
    shipped: dict[str, dict] = {}
    total = 0
    for key in keys:
        path = Path(config[key])
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, strict_timestamps=False) as archive:
            if path.is_file():
                archive.write(path, path.name)
                total += path.stat().st_size
            else:
                inside = path.resolve()
                for item in sorted(path.rglob("*")):
                    if item.is_file() and not item.is_symlink() and inside in item.resolve().parents:
                        total += item.stat().st_size
                        if total > MAX_SHIPPED_BYTES:
                            break
                        archive.write(item, item.relative_to(path))
        if total > MAX_SHIPPED_BYTES:
            raise LoadFailed(
                f"{key} ({config[key]}) is not on the resource group's worker and its files pass "
                f"{MAX_SHIPPED_BYTES >> 20} MiB, more than the gateway sends; put them in a folder "
                "every worker mounts at the same path",
                True,
            )
        shipped[key] = {"zip": buffer.getvalue(), "name": path.name, "is_file": path.is_file()}
    return shipped


def _describe_needs(generation: dict) -> str:
    parts = [f"GPU={generation['gpu']}"] if generation.get("gpu") else []
    return f" with {', '.join(parts)}" if parts else ""
