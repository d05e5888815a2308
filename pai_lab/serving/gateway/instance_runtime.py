"""The instance runtime: one instance process as the gateway sees it, restarted when it dies,
with its own bounded queue, the dispatch of (batched) requests to it, and its answers.

No HTTP here: refusals are :mod:`pai_lab.serving.gateway.errors`, which the protocol handlers map
to status codes."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import secrets
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, cast

import numpy as np

from pai_lab.errors import BadInput
from pai_lab.serving import sandbox as instance_sandbox
from pai_lab.serving import wire
from pai_lab.serving.gateway import METRICS_TOKEN_ENV, SECRET_ENV
from pai_lab.serving.gateway.errors import (
    LoadFailed,
    NotReady,
    QueueFull,
    ServingError,
)
from pai_lab.serving.gateway.instance_replies import Job, Replies, deliver
from pai_lab.serving.protocols import eas

if TYPE_CHECKING:
    from pai_lab.serving.gateway.service_runtime import ServiceRuntime
    from pai_lab.serving.gateway.worker_instances import RemoteProcess

log = logging.getLogger("pai_lab.gateway")
WARM_UP_REPEATS = 5
FATAL_REPEATS = 3  # the same load error this many times in a row is taken as one that will not heal
CONNECT_TRIES = 50


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Instance:
    """One instance process, restarted when it dies, with its own bounded queue."""

    def __init__(self, service: ServiceRuntime, name: str, generation: dict):
        self.service = service
        self.name = name
        self.generation = generation
        self.config = generation["config"]
        self.rpc = generation["rpc"]
        self.concurrency = max(1, int(generation["workers"]))
        self.proc: subprocess.Popen | RemoteProcess | None = None  # RemoteProcess: on a Dask worker
        self.writer: asyncio.StreamWriter | None = None
        self.ready = False
        self.status = "Pending"
        self.reason = ""
        self.restarts = 0
        self.last_state: dict | None = None
        self.start_at: str | None = None
        self.started_iso = ""
        self.pending: collections.deque[Job] = collections.deque()
        self.inflight: dict[int, list[Job]] = {}
        self.draining = False
        self.stopped = False
        self.oom = False
        self.waiting_for_gpus = False  # enough GPUs exist, but others hold them
        self.fatal = False  # its failure will not heal by restarting (a model or processor that cannot load)
        self.load_errors: list[str] = []  # the load errors since it last ran, for FATAL_REPEATS
        self.wakeup = asyncio.Event()
        self.info: dict = {}
        # its own process while one runs (in the sandbox, the one bubblewrap started); None once it ended
        self.host_pid: int | None = None
        self.ids = itertools.count(1)
        self.task = asyncio.create_task(self._run())
        self.dispatcher = asyncio.create_task(self._dispatch_loop())

    # ----------------------------------------------------------------- lifecycle

    @property
    def load(self) -> int:
        return len(self.pending) + len(self.inflight)

    async def _run(self) -> None:
        try:
            await self._live()
        finally:
            self.service.gateway.free_gpus(self.name)

    async def _gpus(self) -> list[str] | None:
        """The GPUs this instance runs on (metadata.gpu of them, none held by another instance);
        until enough are free it waits, Pending with the reason shown in `eascmd w`."""
        wanted = int(self.generation.get("gpu") or 0)
        if self.generation.get("placement"):  # on a worker: its GPUs are the worker's Dask resources
            return []
        gw = self.service.gateway
        while not self.stopped:
            ids = gw.take_gpus(self.name, wanted)
            self.waiting_for_gpus = ids is None and len(gw.gpus) >= wanted
            if ids is not None:
                return ids
            total = len(gw.gpus)
            self.status = "Pending"
            self.reason = (
                f"metadata.gpu asks for {wanted} GPU(s); this machine has {total}"
                if total < wanted
                else f"waiting for {wanted} GPU(s): {len(gw.free_gpu_ids())} of {total} free"
            )
            await asyncio.sleep(0.5)
        return None

    async def _live(self) -> None:
        backoff = 0.5
        while not self.stopped:
            self.start_at = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            self.started_iso = _now()
            gpus = await self._gpus()
            if gpus is None:
                break
            self.status, self.reason = "Pending", "ContainerCreating"
            reading = None
            try:
                reader = await self._spawn(gpus)
                reading = self._take_replies(reader)
                await self._warm_up(reading)
                self.ready, self.status, self.reason = True, "Running", ""
                self.wakeup.set()  # requests may have been queued for it while it was loading
                self.fatal, self.load_errors = False, []
                backoff = 0.5
                await reading
                self.status, self.reason = "Pending", "the instance exited; restarting"
            except asyncio.CancelledError:
                if reading is not None:
                    reading.cancel()
                raise
            except ServingError as exc:
                self.status, self.reason = "Failed", exc.message
                if isinstance(exc, LoadFailed):
                    self.load_errors.append(exc.message)
                    repeated = self.load_errors[-FATAL_REPEATS:]
                    self.fatal = exc.fatal or (len(repeated) == FATAL_REPEATS and len(set(repeated)) == 1)
                log.warning("instance %s failed: %s", self.name, exc.message)
            except Exception as exc:  # any start failure is retried
                self.status, self.reason = "Failed", f"{type(exc).__name__}: {exc}"
                log.warning("instance %s failed", self.name, exc_info=True)
            self.ready = False
            code = await self._reap()
            self.host_pid = None  # its process is gone: nothing may show or measure it under a pid now free
            self.service.gateway.free_gpus(self.name)
            self._fail_inflight()
            if self.stopped:
                break
            self.restarts += 1
            reason = "OOMKilled" if self.oom else ("Error" if self.status != "Failed" else "StartError")
            if self.status != "Failed":  # a process that ran and ended: waiting for its replacement
                self.status, self.reason = "Pending", f"the instance exited with {code}; restarting"
            self.last_state = {"exitCode": code, "finishedAt": _now(), "reason": reason, "startedAt": self.started_iso}
            self.oom = False
            # its queue goes to another ready instance, or fails now with 503: a restart takes seconds
            # and its callers would otherwise wait for 408 while the queue stays full (450 for all)
            self.service.hand_over(self)
            self._fail_pending(f"instance {self.name} exited; retry")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)

    async def _spawn(self, gpus: list[str]):
        if self.generation.get("placement"):  # the resource group's Dask workers host it
            from pai_lab.serving.gateway import worker_instances

            reader, self.writer, self.proc = await worker_instances.spawn(self)
            self.host_pid = self.proc.pid  # its own, on its worker
            return await self._handshake(reader)
        gw = self.service.gateway
        sock = gw.sockets_dir / f"{secrets.token_hex(6)}.sock"
        env = instance_sandbox.instance_env()  # never a server credential
        env.pop(SECRET_ENV, None)
        env.pop(METRICS_TOKEN_ENV, None)
        if gpus or gw.gpus:  # pinned to its own GPUs; an instance that asked for none sees none
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cpu = self.generation.get("cpu")
        if cpu:
            threads = str(max(1, int(float(cpu) + 0.999)))
            env.update(TF_NUM_INTRAOP_THREADS=threads, OMP_NUM_THREADS=threads)
        config = {**self.config, "workers": self.concurrency}
        logfile = open(gw.logs_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - the child's log: it outlives this call
        argv = [sys.executable, "-m", "pai_lab.serving.instance", str(sock), json.dumps(config)]
        argv = instance_sandbox.instance_argv(self.generation.get("sandbox"), argv, config, gw.sockets_dir)
        self.proc = subprocess.Popen(
            argv,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        logfile.close()
        self.host_pid = self.proc.pid  # until the sandbox's own is found below, once it listens
        # the instance names its socket only once it listens; a refusal is still retried (an
        # instance of an older pai_lab bound the final name first)
        for attempt in range(CONNECT_TRIES):
            while not sock.exists():
                if self.proc.poll() is not None:
                    raise NotReady(f"the instance exited with {self.proc.returncode} before listening")
                await asyncio.sleep(0.02)
            try:
                reader, self.writer = await asyncio.open_unix_connection(str(sock), limit=1 << 26)
                # a batch of tensors (hundreds of KiB) leaves in one send, not in pieces as the instance reads
                self.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                break
            except ConnectionRefusedError:
                if attempt == CONNECT_TRIES - 1 or self.proc.poll() is not None:
                    raise
                await asyncio.sleep(0.05)
        self.host_pid = instance_sandbox.instance_pid(self.proc)
        return await self._handshake(reader)

    async def _handshake(self, reader):
        """The instance's first frame: loaded (with the model's signatures) or failed."""
        try:
            kind, info = await wire.read_frame_async(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            raise NotReady("the instance exited while loading the model; see `eascmd w` and its log") from None
        if kind == "failed":
            if isinstance(info, dict):
                raise LoadFailed(info.get("message", ""), bool(info.get("fatal")))
            raise LoadFailed(str(info), False)
        self.info = info
        self.service.learn(self)
        return reader

    async def _warm_up(self, reading: asyncio.Future) -> None:
        """Replay the warm-up requests, each 5 times, before the instance counts as ready."""
        for body in self.generation.get("warm_up") or []:
            for _ in range(WARM_UP_REPEATS):
                try:
                    job = self.service.make_job(
                        body, "application/json" if eas.is_json("", body) else "application/octet-stream"
                    )[0]
                    self._send([job])
                    await asyncio.wait({job.future, reading}, return_when=asyncio.FIRST_COMPLETED)
                    if not job.future.done():
                        raise NotReady("the instance exited during warm-up")
                    job.future.result()
                except (ServingError, BadInput) as exc:
                    if reading.done():
                        raise
                    log.warning("warm-up request of %s failed: %s", self.name, getattr(exc, "message", exc))
                    break

    def _take_replies(self, reader: asyncio.StreamReader) -> asyncio.Future:
        """From the handshake on, the instance's replies are read by a protocol that resolves each
        request's future as its frame arrives (no reading task to wake in between). The future
        returned ends when the connection does."""
        assert self.writer is not None
        transport = cast(asyncio.Transport, self.writer.transport)
        replies = Replies(self, asyncio.get_running_loop().create_future())
        transport.set_protocol(replies)
        leftover = bytes(getattr(reader, "_buffer", b""))  # none: the instance waits for a request now
        if leftover:
            replies.data_received(leftover)
        if transport.is_closing() or reader.at_eof():
            replies.connection_lost(None)
        else:
            transport.resume_reading()  # a no-op unless the stream had paused it
        return replies.closed

    def _reply(self, request_id: int, status: str, result) -> None:
        jobs = self.inflight.pop(request_id, None)
        if self.pending:  # the freed slot matters only to requests waiting for one
            self.wakeup.set()
        if jobs:
            deliver(jobs, status, result)

    async def _reap(self) -> int | None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.proc is None:
            return None
        for _ in range(100):
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        else:
            self.proc.kill()
            await asyncio.sleep(0.05)
        code = self.proc.poll()
        return 128 - code if code is not None and code < 0 else code  # -9 -> 137, as containers report it

    def _fail_pending(self, message: str) -> None:
        jobs = list(self.pending)
        self.pending.clear()
        for job in jobs:
            job.end(error=NotReady(message))

    def _fail_inflight(self) -> None:
        jobs = [j for batch in self.inflight.values() for j in batch]
        self.inflight.clear()
        for job in jobs:
            job.end(error=NotReady(f"instance {self.name} stopped while handling the request"))

    async def stop(self, drain: bool = True) -> None:
        """Take no new requests; finish those queued and in flight; then end the process."""
        self.draining = True
        if drain:
            while (self.pending or self.inflight) and self.proc is not None and self.proc.poll() is None:
                self.wakeup.set()
                await asyncio.sleep(0.02)
        self.stopped = True
        self.ready = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
        self.dispatcher.cancel()
        try:
            await asyncio.wait_for(self.task, 10)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
        for job in self.pending:
            job.end(error=NotReady(f"instance {self.name} was stopped"))
        self.pending.clear()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    # ----------------------------------------------------------------- requests

    def enqueue(self, job: Job) -> None:
        if not self.ready or self.draining:  # died or retired since it was picked
            raise NotReady(f"instance {self.name} is not ready; retry")
        if len(self.pending) >= self.rpc["max_queue_size"]:
            self._drop_abandoned()
            raise QueueFull(
                f"the request queue of {self.service.name} is full "
                f"(rpc.max_queue_size={self.rpc['max_queue_size']}); retry later"
            )
        if not self.inflight and not self.pending and self.writer is not None:
            self._send([job])  # idle: straight to the instance, no batch window and no dispatcher turn
            return
        self.pending.append(job)
        self.wakeup.set()

    def _drop_abandoned(self) -> None:
        """Requests whose callers stopped waiting (408) no longer hold a place in the queue."""
        if any(j.future.done() for j in self.pending):
            self.pending = collections.deque(j for j in self.pending if not j.future.done())

    def forget(self, job: Job) -> None:
        try:
            self.pending.remove(job)
        except ValueError:
            pass  # already sent, or handed over

    def _send(self, jobs: list[Job]) -> None:
        request_id = next(self.ids)
        first = jobs[0]
        if len(jobs) == 1:
            kind, payload = first.kind, first.payload
        elif first.kind == "process":
            kind, payload = "process_batch", [j.payload for j in jobs]
        else:
            kind = "predict"
            names = list(first.payload["inputs"])
            payload = {
                "signature_name": first.payload["signature_name"],
                "output_filter": first.payload["output_filter"],
                "inputs": {n: np.concatenate([j.payload["inputs"][n] for j in jobs]) for n in names},
            }
        self.inflight[request_id] = jobs
        self.service.gateway.metrics.batch(self.service.name, self.name, sum(max(j.rows, 1) for j in jobs))
        assert self.writer is not None  # the pump sends only to a connected instance
        wire.write_frame(self.writer, (request_id, kind, payload))

    def _take_batch(self) -> list[Job]:
        first = self.pending.popleft()
        if not self.rpc["batching"] or first.key is None or not first.key[3]:
            return [first]
        jobs, rows, limit = [first], first.rows, self.rpc["max_batch_size"]
        skipped = []
        while self.pending and rows < limit:
            job = self.pending.popleft()
            if job.future.done():
                continue
            if job.key == first.key and rows + job.rows <= limit:
                jobs.append(job)
                rows += job.rows
            else:
                skipped.append(job)
        self.pending.extendleft(reversed(skipped))
        return jobs

    async def _dispatch_loop(self) -> None:
        batch_timeout = self.rpc["max_batch_timeout"] / 1000
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.pending and self.ready and self.writer is not None and len(self.inflight) < self.concurrency:
                while self.pending and self.pending[0].future.done():  # timed out while queued
                    self.pending.popleft()
                if not self.pending:
                    break
                if self.rpc["batching"] and self.inflight and batch_timeout:
                    # busy: let the batch fill up to max_batch_size or max_batch_timeout
                    deadline = time.monotonic() + batch_timeout
                    while (
                        sum(j.rows for j in self.pending) < self.rpc["max_batch_size"]
                        and self.inflight
                        and time.monotonic() < deadline
                    ):
                        self.wakeup.clear()
                        try:
                            await asyncio.wait_for(self.wakeup.wait(), deadline - time.monotonic())
                        except asyncio.TimeoutError:
                            break
                    if not self.pending or not self.ready or self.writer is None:
                        break
                jobs = [j for j in self._take_batch() if not j.future.done()]
                if jobs:
                    self._send(jobs)

    def describe(self) -> dict:
        total = 1
        return {
            "name": self.name,
            "version": self.generation["version"],
            "pid": self.host_pid,
            "inner_ip": f"unix:{self.name}" if self.proc else "",
            "host_ip": "127.0.0.1",
            **_where(self.proc),
            "start_at": self.start_at,
            "restarts": self.restarts,
            "status": self.status,
            "ready": f"[{int(self.ready)}/{total}]",
            "reason": self.reason,
            "last_state": self.last_state,
            "draining": self.draining,
            "queue": len(self.pending),
            "inflight": len(self.inflight),
            "fatal": self.fatal,
            "gpus": list(self.service.gateway.gpu_holders.get(self.name, [])),
        }


def _where(proc) -> dict:
    """A worker-hosted instance's address and worker (a local one's are the defaults above)."""
    if not getattr(proc, "remote", False):
        return {}
    return {"inner_ip": f"{proc.host}:{proc.port}", "host_ip": proc.host, "worker": proc.worker}
