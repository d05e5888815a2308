"""The serving gateway: a long-lived tornado process in front of every service's instances.

    python -m pai_lab.serving.gateway --port 0 --state-dir DIR      (secret in $PAI_LAB_GATEWAY_SECRET)

The control plane starts it, pushes the whole desired state (services, versions, instance
counts, traffic split) to ``PUT /_admin/state`` after every change, and reads ``GET
/_admin/status``. The gateway reconciles: it starts instance processes, replaces crashed ones,
rolls a new version out before retiring the old one (so no request is lost), and routes each
request by its entry endpoint's weights to a ready instance's bounded queue.

Public endpoints: EAS ``/api/predict/<name>``, TF Serving ``/v1/models/...``, Open Inference v2
``/v2/...``, and ``/metrics`` in the Prometheus text format.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hmac
import itertools
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tornado import httpserver, web

from pai_lab.errors import BadInput
from pai_lab.serving import wire
from pai_lab.serving.protocols import eas, fit_inputs, tfserving, v2

log = logging.getLogger("pai_lab.gateway")
SECRET_ENV = "PAI_LAB_GATEWAY_SECRET"
METRICS_TOKEN_ENV = "PAI_LAB_GATEWAY_METRICS_TOKEN"  # when set, /metrics wants it as a bearer token
QUEUE_FULL = 450
WARM_UP_REPEATS = 5


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class LoadFailed(HttpError):
    """The instance could not load its processor; ``fatal`` when restarting cannot help."""

    def __init__(self, message: str, fatal: bool):
        super().__init__(503, f"loading failed: {message}")
        self.fatal = fatal


FATAL_REPEATS = 3  # the same load error this many times in a row is taken as one that will not heal
CONNECT_TRIES = 50


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Job:
    """One request waiting for (or inside) an instance."""

    __slots__ = ("kind", "payload", "future", "rows", "key")

    def __init__(self, kind: str, payload, future: asyncio.Future, batchable: bool = False):
        self.kind = kind
        self.payload = payload
        self.future = future
        self.rows = 0
        self.key = None
        if kind == "process":  # a Python processor's request: one row, batched if it has process_batch
            self.rows = 1
            self.key = ("process", (), (), batchable)
        elif kind == "predict":
            inputs = payload["inputs"]
            first = next(iter(inputs.values()))
            self.rows = first.shape[0] if first.ndim else 0
            # requests batch together only when they ask the same thing of same-shaped inputs
            self.key = (payload["signature_name"], tuple(payload["output_filter"] or ()),
                        tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(inputs.items())),
                        all(a.ndim and a.shape[0] == self.rows for a in inputs.values()))


class Instance:
    """One instance process, restarted when it dies, with its own bounded queue."""

    def __init__(self, service: "ServiceRuntime", name: str, generation: dict):
        self.service = service
        self.name = name
        self.generation = generation
        self.config = generation["config"]
        self.rpc = generation["rpc"]
        self.concurrency = max(1, int(generation["workers"]))
        self.proc: subprocess.Popen | None = None
        self.writer = None
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
        gw = self.service.gateway
        while not self.stopped:
            ids = gw.take_gpus(self.name, wanted)
            self.waiting_for_gpus = ids is None and len(gw.gpus) >= wanted
            if ids is not None:
                return ids
            total = len(gw.gpus)
            self.status = "Pending"
            self.reason = (f"metadata.gpu asks for {wanted} GPU(s); this machine has {total}" if total < wanted
                           else f"waiting for {wanted} GPU(s): {len(gw.free_gpu_ids())} of {total} free")
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
                reading = asyncio.create_task(self._read_loop(reader))
                await self._warm_up(reading)
                self.ready, self.status, self.reason = True, "Running", ""
                self.wakeup.set()  # requests may have been queued for it while it was loading
                self.fatal, self.load_errors = False, []
                backoff = 0.5
                await reading
            except asyncio.CancelledError:
                if reading is not None:
                    reading.cancel()
                raise
            except HttpError as exc:
                self.status, self.reason = "Failed", exc.message
                if isinstance(exc, LoadFailed):
                    self.load_errors.append(exc.message)
                    repeated = self.load_errors[-FATAL_REPEATS:]
                    self.fatal = exc.fatal or (len(repeated) == FATAL_REPEATS and len(set(repeated)) == 1)
                log.warning("instance %s failed: %s", self.name, exc.message)
            except Exception as exc:  # noqa: BLE001 - any start failure is retried
                self.status, self.reason = "Failed", f"{type(exc).__name__}: {exc}"
                log.warning("instance %s failed", self.name, exc_info=True)
            self.ready = False
            code = await self._reap()
            self.service.gateway.free_gpus(self.name)
            self._fail_inflight()
            if self.stopped:
                break
            self.restarts += 1
            reason = "OOMKilled" if self.oom else ("Error" if self.status != "Failed" else "StartError")
            self.last_state = {"exitCode": code, "finishedAt": _now(), "reason": reason,
                               "startedAt": self.started_iso}
            self.oom = False
            # its queue goes to another ready instance, or fails now with 503: a restart takes seconds
            # and its callers would otherwise wait for 408 while the queue stays full (450 for all)
            self.service.hand_over(self)
            self._fail_pending(f"instance {self.name} exited; retry")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)

    async def _spawn(self, gpus: list[str]):
        gw = self.service.gateway
        sock = gw.sockets_dir / f"{secrets.token_hex(6)}.sock"
        env = dict(os.environ)
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
        logfile = open(gw.logs_dir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "pai_lab.serving.instance", str(sock), json.dumps(config)],
                                     stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        logfile.close()
        # the instance names its socket only once it listens; a refusal is still retried (an
        # instance of an older pai_lab bound the final name first)
        for attempt in range(CONNECT_TRIES):
            while not sock.exists():
                if self.proc.poll() is not None:
                    raise HttpError(503, f"the instance exited with {self.proc.returncode} before listening")
                await asyncio.sleep(0.02)
            try:
                reader, self.writer = await asyncio.open_unix_connection(str(sock), limit=1 << 26)
                break
            except ConnectionRefusedError:
                if attempt == CONNECT_TRIES - 1 or self.proc.poll() is not None:
                    raise
                await asyncio.sleep(0.05)
        try:
            kind, info = await wire.read_frame_async(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            raise HttpError(503, "the instance exited while loading the model; see `eascmd w` and its log") from None
        if kind == "failed":
            if isinstance(info, dict):
                raise LoadFailed(info.get("message", ""), bool(info.get("fatal")))
            raise LoadFailed(str(info), False)
        self.info = info
        self.service.learn(self)
        return reader

    async def _warm_up(self, reading: asyncio.Task) -> None:
        """Replay the warm-up requests, each 5 times, before the instance counts as ready."""
        for body in self.generation.get("warm_up") or []:
            for _ in range(WARM_UP_REPEATS):
                try:
                    job = self.service.make_job(body, "application/json" if eas.is_json("", body)
                                                else "application/octet-stream")[0]
                    self._send([job])
                    await asyncio.wait({job.future, reading}, return_when=asyncio.FIRST_COMPLETED)
                    if not job.future.done():
                        raise HttpError(503, "the instance exited during warm-up")
                    job.future.result()
                except (HttpError, BadInput) as exc:
                    if reading.done():
                        raise
                    log.warning("warm-up request of %s failed: %s", self.name, getattr(exc, "message", exc))
                    break

    async def _read_loop(self, reader) -> None:
        while True:
            try:
                request_id, status, result = await wire.read_frame_async(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            jobs = self.inflight.pop(request_id, None)
            self.wakeup.set()
            if jobs:
                _deliver(jobs, status, result)

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
            if not job.future.done():
                job.future.set_exception(HttpError(503, message))

    def _fail_inflight(self) -> None:
        jobs = [j for batch in self.inflight.values() for j in batch]
        self.inflight.clear()
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(HttpError(503, f"instance {self.name} stopped while handling the request"))

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
            if not job.future.done():
                job.future.set_exception(HttpError(503, f"instance {self.name} was stopped"))
        self.pending.clear()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    # ----------------------------------------------------------------- requests

    def enqueue(self, job: Job) -> None:
        if not self.ready or self.draining:  # died or retired since it was picked
            raise HttpError(503, f"instance {self.name} is not ready; retry")
        if len(self.pending) >= self.rpc["max_queue_size"]:
            self._drop_abandoned()
            raise HttpError(QUEUE_FULL, f"the request queue of {self.service.name} is full "
                                        f"(rpc.max_queue_size={self.rpc['max_queue_size']}); retry later")
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
            payload = {"signature_name": first.payload["signature_name"],
                       "output_filter": first.payload["output_filter"],
                       "inputs": {n: np.concatenate([j.payload["inputs"][n] for j in jobs]) for n in names}}
        self.inflight[request_id] = jobs
        self.service.gateway.metrics.batch(self.service.name, self.name, sum(max(j.rows, 1) for j in jobs))
        self.writer.write(wire.pack((request_id, kind, payload)))

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
                    while (sum(j.rows for j in self.pending) < self.rpc["max_batch_size"] and self.inflight
                           and time.monotonic() < deadline):
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
        return {"name": self.name, "version": self.generation["version"], "pid": self.proc.pid if self.proc else None,
                "inner_ip": f"unix:{self.name}" if self.proc else "", "host_ip": "127.0.0.1",
                "start_at": self.start_at, "restarts": self.restarts, "status": self.status,
                "ready": f"[{int(self.ready)}/{total}]", "reason": self.reason, "last_state": self.last_state,
                "draining": self.draining, "queue": len(self.pending), "inflight": len(self.inflight),
                "fatal": self.fatal,
                "gpus": list(self.service.gateway.gpu_holders.get(self.name, []))}


def _deliver(jobs: list[Job], status: str, result) -> None:
    if status != "ok":
        code, message = result
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(HttpError(code, message))
        return
    if len(jobs) == 1:
        if not jobs[0].future.done():
            jobs[0].future.set_result(result)
        return
    if isinstance(result, list):  # a Python processor's batch: one answer per request, in order
        for job, answer in zip(jobs, result):
            if not job.future.done():
                job.future.set_result(answer)
        return
    start = 0
    for job in jobs:
        end = start + job.rows
        if not job.future.done():
            job.future.set_result({k: v[start:end] for k, v in result.items()})
        start = end


class ServiceRuntime:
    """A service inside the gateway: its generations of instances and what they serve."""

    def __init__(self, gateway: "Gateway", name: str):
        self.gateway = gateway
        self.name = name
        self.spec: dict = {}
        self.instances: list[Instance] = []  # serving
        self.incoming: list[Instance] = []  # a new version starting (rolling update)
        self.retiring: set[Instance] = set()
        self.kind = None
        self.batchable = False
        self.signatures: dict = {}
        self.default_signature: str | None = None
        self.rollout: asyncio.Task | None = None
        self.stats = {"requests": 0, "errors": 0, "latency_ms_sum": 0.0}
        self.rr = itertools.count()

    # ----------------------------------------------------------------- reconcile

    @property
    def revision(self) -> str | None:
        return self.spec.get("revision")

    def _instance_name(self) -> str:
        return f"{self.name.replace('_', '-')}-{self.spec['revision'][:10]}-{secrets.token_hex(3)[:5]}"

    def _generation(self) -> dict:
        s = self.spec
        return {"config": s["processor"], "rpc": s["rpc"], "workers": s["workers"], "version": s["version"],
                "revision": s["revision"], "cpu": s.get("cpu"), "memory": s.get("memory"), "gpu": s.get("gpu"),
                "warm_up": [base64.b64decode(b) for b in s.get("warm_up") or []]}

    def apply(self, spec: dict) -> None:
        old_revision, self.spec = self.revision, spec
        if spec["state"] == "Stopped":
            self._cancel_rollout()
            for inst in self.instances:
                self._retire(inst)
            self.instances = []
            return
        want = int(spec["instance"])
        if old_revision != spec["revision"] or (not self.instances and not self.incoming):
            self._cancel_rollout()
            generation = self._generation()
            if not self.instances:
                self.instances = [Instance(self, self._instance_name(), generation) for _ in range(want)]
                self._forget_signature()
            else:  # rolling update: the old instances serve until the new ones are all ready
                self.incoming = [Instance(self, self._instance_name(), generation) for _ in range(want)]
                self.rollout = asyncio.create_task(self._roll_out(self.incoming))
            return
        target = self.incoming if self.incoming else self.instances
        generation = target[0].generation if target else self._generation()
        while len(target) < want:
            target.append(Instance(self, self._instance_name(), generation))
        while len(target) > want:
            self._retire(target.pop())

    def _cancel_rollout(self) -> None:
        if self.rollout is not None:
            self.rollout.cancel()
            self.rollout = None
        for inst in self.incoming:
            self._retire(inst, drain=False)
        self.incoming = []

    def _forget_signature(self) -> None:
        self.kind, self.signatures, self.default_signature = None, {}, None

    async def _roll_out(self, incoming: list[Instance]) -> None:
        handing_over: Instance | None = None
        while not all(i.ready for i in incoming):
            # The old version holds the GPUs the new one waits for: rather than wait forever, its
            # instances give theirs up one at a time (the service runs one instance short meanwhile).
            if (handing_over is None or handing_over not in self.retiring) and self._old_hold_needed_gpus(incoming):
                handing_over = next(i for i in self.instances if self.gateway.gpu_holders.get(i.name))
                self.instances.remove(handing_over)
                self._retire(handing_over)
            await asyncio.sleep(0.05)
        if self.incoming is not incoming:
            return
        old, self.instances, self.incoming, self.rollout = self.instances, incoming, [], None
        if incoming:
            self._set_signature(incoming[0].info)
        for inst in old:
            self._retire(inst)

    def _old_hold_needed_gpus(self, incoming: list[Instance]) -> bool:
        return any(i.waiting_for_gpus for i in incoming) and \
            any(self.gateway.gpu_holders.get(i.name) for i in self.instances)

    def _retire(self, inst: Instance, drain: bool = True) -> None:
        self.retiring.add(inst)

        async def go():
            try:
                await inst.stop(drain)
            finally:
                self.retiring.discard(inst)

        asyncio.create_task(go())

    def learn(self, inst: Instance) -> None:
        """An instance loaded: what the model looks like, taken from the generation that serves."""
        if inst in self.instances or self.kind is None and not self.instances:
            self._set_signature(inst.info)

    def _set_signature(self, info: dict) -> None:
        self.kind = info["kind"]
        self.batchable = bool(info.get("batchable"))
        self.signatures = info["signatures"]
        self.default_signature = info.get("default_signature")

    def hand_over(self, dead: Instance) -> None:
        """A crashed instance's queued requests go to the others that are ready."""
        others = [i for i in self.instances if i is not dead and i.ready and not i.draining]
        while dead.pending and others:
            job = dead.pending.popleft()
            min(others, key=lambda i: i.load).pending.append(job)
        for inst in others:
            inst.wakeup.set()

    async def close(self, drain: bool = False) -> None:
        """End every instance; ``drain``: let queued and in-flight requests finish first."""
        self._cancel_rollout()
        await asyncio.gather(*(i.stop(drain=drain) for i in [*self.instances, *self.retiring]),
                             return_exceptions=True)
        self.instances = []

    def delete_instance(self, name: str) -> bool:
        for group in (self.instances, self.incoming):
            for i, inst in enumerate(group):
                if inst.name == name:
                    group[i] = Instance(self, self._instance_name(), inst.generation)
                    self._retire(inst)
                    return True
        return False

    # ----------------------------------------------------------------- requests

    def signature(self, name: str | None) -> dict:
        if self.kind is None:
            raise HttpError(503, f"service {self.name} has no ready instance yet; wait until it is Running")
        key = name or self.default_signature
        if key not in self.signatures:
            raise HttpError(400, f"unknown signature_name {key!r}; the model has: {', '.join(sorted(self.signatures))}")
        return self.signatures[key]

    def make_job(self, body: bytes, content_type: str) -> tuple[Job, bool]:
        """An EAS request body as a job; also whether the answer should be JSON."""
        future = asyncio.get_running_loop().create_future()
        if self.kind == "python":
            return Job("process", body, future, batchable=self.batchable), False
        as_json = eas.is_json(content_type, body)
        sig_name, inputs, output_filter = (eas.parse_json if as_json else eas.parse_proto)(body)
        return self.tensor_job(sig_name, inputs, output_filter, future), as_json

    def tensor_job(self, sig_name, inputs, output_filter, future=None) -> Job:
        if self.kind == "python":
            raise HttpError(400, f"service {self.name} runs a Python processor; call /api/predict/{self.name} "
                                 "with the body it expects")
        sig = self.signature(sig_name)
        inputs = fit_inputs(sig, inputs)
        future = future or asyncio.get_running_loop().create_future()
        return Job("predict", {"signature_name": sig["signature_name"], "inputs": inputs,
                               "output_filter": output_filter}, future)

    def pick(self) -> Instance:
        ready = [i for i in self.instances if i.ready and not i.draining]
        if not ready:
            state = "stopped" if self.spec.get("state") == "Stopped" else "not ready yet"
            raise HttpError(503, f"service {self.name} has no ready instance ({state})")
        if len(ready) == 1:
            return ready[0]
        start = next(self.rr) % len(ready)
        order = ready[start:] + ready[:start]
        return min(order, key=lambda i: i.load)

    # ----------------------------------------------------------------- status

    @property
    def state(self) -> str:
        if self.spec.get("state") == "Stopped":
            return "Stopping" if self.retiring else "Stopped"
        if self.incoming:
            return "HotUpdate"
        ready = sum(i.ready for i in self.instances)
        if self.instances and ready == 0 and all(i.status == "Failed" or i.fatal for i in self.instances):
            return "Failed"
        if int(self.spec.get("instance", 0)) == 0:
            return "Running"
        if ready == 0:
            return "Waiting"
        return "Running"

    def status(self) -> dict:
        shown = [*self.instances, *self.incoming]
        return {"state": self.state, "ready": sum(i.ready for i in self.instances),
                "total": len(self.instances), "version": self.spec.get("version"), "revision": self.revision,
                "instances": [i.describe() for i in shown] + [dict(i.describe(), status="Terminating")
                                                              for i in self.retiring],
                "signature": self.signatures.get(self.default_signature) if self.signatures else None,
                "message": next((i.reason for i in shown if i.status == "Failed"), "")
                or next((i.load_errors[-1] for i in shown if i.fatal and i.load_errors), ""),
                # every instance failed in a way restarting cannot heal: waiting for Running is pointless
                "fatal": bool(shown) and all(i.fatal for i in shown) and not any(i.ready for i in shown)
                or bool(self.incoming) and all(i.fatal for i in self.incoming),  # a new version that cannot load
                "stats": dict(self.stats)}


class Route:
    """An entry endpoint: its token and the services its traffic goes to, by weight.

    Smooth weighted round robin spreads the shares exactly (30% is 3 in every 10)."""

    def __init__(self, token: str | None, targets: dict[str, int]):
        self.token = token
        self.targets = [(name, w) for name, w in targets.items() if w > 0]
        self.total = sum(w for _, w in self.targets)
        self.current = {name: 0 for name, _ in self.targets}

    def choose(self) -> str:
        if len(self.targets) == 1:
            return self.targets[0][0]
        best = None
        for name, weight in self.targets:
            self.current[name] += weight
            if best is None or self.current[name] > self.current[best]:
                best = name
        self.current[best] -= self.total
        return best


class Metrics:
    """Prometheus metrics, per service and instance."""

    def __init__(self, gateway: "Gateway"):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("pai_serving_requests", "Requests answered, by HTTP status",
                                ["service", "instance", "code"], registry=self.registry)
        self.latency = Histogram("pai_serving_request_latency_seconds", "Time from arrival to answer",
                                 ["service"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.batch_size = Histogram("pai_serving_batch_size", "Samples per model call",
                                    ["service", "instance"], registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self._children: dict = {}
        self.registry.register(_LiveCollector(gateway))

    def _child(self, metric, *labels):
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, service: str, instance: str, code: int, seconds: float) -> None:
        self._child(self.requests, service, instance, str(code)).inc()
        if service:
            self._child(self.latency, service).observe(seconds)

    def batch(self, service: str, instance: str, size: int) -> None:
        self._child(self.batch_size, service, instance).observe(size)


class _LiveCollector:
    """Gauges read at scrape time from the live state: queue depth, in flight, ready, restarts."""

    def __init__(self, gateway: "Gateway"):
        self.gateway = gateway

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        queue = GaugeMetricFamily("pai_serving_queue_depth", "Requests waiting in an instance's queue",
                                  labels=["service", "instance"])
        inflight = GaugeMetricFamily("pai_serving_inflight", "Model calls under way", labels=["service", "instance"])
        ready = GaugeMetricFamily("pai_serving_instance_ready", "1 when the instance takes traffic",
                                  labels=["service", "instance"])
        restarts = GaugeMetricFamily("pai_serving_instance_restarts", "Times the instance was restarted",
                                     labels=["service", "instance"])
        for svc in list(self.gateway.services.values()):
            for inst in [*svc.instances, *svc.incoming]:
                labels = [svc.name, inst.name]
                queue.add_metric(labels, len(inst.pending))
                inflight.add_metric(labels, len(inst.inflight))
                ready.add_metric(labels, int(inst.ready))
                restarts.add_metric(labels, inst.restarts)
        yield from (queue, inflight, ready, restarts)


def detect_gpus() -> list[str]:
    """The GPUs instances are pinned to, as CUDA_VISIBLE_DEVICES names them (an index, a
    ``GPU-<uuid>`` or a ``MIG-<uuid>``): PAI_LAB_GPUS (a comma list, "" for none) when set, else
    CUDA_VISIBLE_DEVICES, else what `nvidia-smi -L` lists; none on a CPU-only machine."""
    for var in ("PAI_LAB_GPUS", "CUDA_VISIBLE_DEVICES"):
        declared = os.environ.get(var)
        if declared is not None:
            # schedulers often hand out UUIDs: an instance is pinned with the very name it was given
            return [x.strip() for x in declared.split(",") if x.strip()]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i in range(sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU ")))]


class Gateway:
    def __init__(self, state_dir: Path, secret: str, metrics_token: str = ""):
        self.state_dir = state_dir
        self.metrics_token = metrics_token
        self.logs_dir = state_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to ~100 bytes: keep them short, whatever the state folder is
        import tempfile

        self.sockets_dir = Path(tempfile.mkdtemp(prefix="pai-gw-"))
        self.secret = secret
        self.services: dict[str, ServiceRuntime] = {}
        self.routes: dict[str, Route] = {}
        self.metrics = Metrics(self)
        self.watchdog: asyncio.Task | None = None
        self.gpus = detect_gpus()
        self.gpu_holders: dict[str, list[str]] = {}

    def free_gpu_ids(self) -> list[str]:
        held = {g for ids in self.gpu_holders.values() for g in ids}
        return [g for g in self.gpus if g not in held]

    def take_gpus(self, holder: str, count: int) -> list[str] | None:
        """``count`` free GPUs for ``holder`` (None: not enough free now)."""
        if count <= 0:
            return []
        free = self.free_gpu_ids()
        if len(free) < count:
            return None
        self.gpu_holders[holder] = free[:count]
        return free[:count]

    def free_gpus(self, holder: str) -> None:
        self.gpu_holders.pop(holder, None)

    def apply_state(self, state: dict) -> None:
        wanted = {s["name"]: s for s in state.get("services", [])}
        for name in list(self.services):
            if name not in wanted:
                svc = self.services.pop(name)
                asyncio.create_task(svc.close(drain=True))  # a deleted service finishes what it holds
        for name, spec in wanted.items():
            svc = self.services.get(name) or self.services.setdefault(name, ServiceRuntime(self, name))
            svc.apply(spec)
        self.routes = {entry: Route(r.get("token"), r["targets"]) for entry, r in state.get("routes", {}).items()}

    def route(self, entry: str) -> Route:
        route = self.routes.get(entry)
        if route is None:
            raise HttpError(404, f"no service is served at {entry!r}; `pai eascmd ls` lists the services")
        return route

    def service(self, name: str) -> ServiceRuntime:
        svc = self.services.get(name)
        if svc is None:
            raise HttpError(404, f"service {name!r} is not deployed")
        return svc

    async def watch_memory(self) -> None:
        """Instances above metadata.memory are killed as OOMKilled and restarted, as in a container."""
        import psutil

        parent = os.getppid()
        while True:
            await asyncio.sleep(1.0)
            if os.getppid() != parent:  # the control plane is gone: do not linger
                os.kill(os.getpid(), signal.SIGTERM)
            for svc in list(self.services.values()):
                for inst in [*svc.instances, *svc.incoming]:
                    limit = inst.generation.get("memory")
                    if not limit or inst.proc is None or inst.proc.poll() is not None:
                        continue
                    try:
                        rss = psutil.Process(inst.proc.pid).memory_info().rss
                    except psutil.Error:
                        continue
                    if rss > int(limit) * 1024 * 1024:
                        log.warning("instance %s uses %d MB > metadata.memory %s MB: killed", inst.name,
                                    rss >> 20, limit)
                        inst.oom = True
                        inst.kill()

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.services.values()), return_exceptions=True)
        import shutil

        shutil.rmtree(self.sockets_dir, ignore_errors=True)


# --------------------------------------------------------------------------- HTTP


class BaseHandler(web.RequestHandler):
    def initialize(self, gateway: Gateway):
        self.gateway = gateway
        self.t0 = time.perf_counter()
        self.metric_service = ""
        self.metric_instance = ""

    def check_xsrf_cookie(self):  # token-authenticated API, no cookies
        return None

    def compute_etag(self):
        return None

    def on_finish(self):
        self.gateway.metrics.observe(self.metric_service, self.metric_instance, self.get_status(),
                                     time.perf_counter() - self.t0)
        if self.metric_service in self.gateway.services:
            stats = self.gateway.services[self.metric_service].stats
            stats["requests"] += 1
            stats["latency_ms_sum"] += (time.perf_counter() - self.t0) * 1000
            if self.get_status() >= 400:
                stats["errors"] += 1

    def fail(self, status: int, message: str, as_json: bool = True) -> None:
        reason = {QUEUE_FULL: "Queue Full"}.get(status)
        self.set_status(status, reason=reason)
        if status in (QUEUE_FULL, 408):
            self.set_header("Connection", "close")  # as EAS does: the client retries elsewhere
        if as_json:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": message}))
        else:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(message)

    def authorize(self, route: Route, path: str) -> None:
        header = self.request.headers.get("Authorization", "")
        why = eas.refusal(route.token, header, self.request.method, path, self.request.headers,
                          self.request.body or b"")
        if why:
            raise HttpError(401, f"{why}: send `Authorization: <service token>` "
                                 "(`pai eascmd desc <name>` shows AccessToken)")

    async def run_tensors(self, svc: ServiceRuntime, sig_name, inputs, output_filter):
        self.metric_service = svc.name
        job = svc.tensor_job(sig_name, inputs, output_filter)
        return await self.call(svc, job)

    async def call(self, svc: ServiceRuntime, job: Job):
        inst = svc.pick()
        self.metric_instance = inst.name
        inst.enqueue(job)
        try:
            return await asyncio.wait_for(job.future, svc.spec["rpc"]["keepalive"] / 1000)
        except asyncio.TimeoutError:  # the future is cancelled: its place in a queue is given up
            for holder in svc.instances:  # it may have been handed over to another instance
                holder.forget(job)
            raise HttpError(408, f"the request took longer than rpc.keepalive={svc.spec['rpc']['keepalive']} ms"
                            ) from None


class EasHandler(BaseHandler):
    async def get(self, entry: str):
        try:
            route = self.gateway.route(entry)
            self.authorize(route, self.request.path)
            svc = self.gateway.service(route.choose())
            self.metric_service = svc.name
            if svc.kind == "python":
                raise HttpError(405, f"service {svc.name} runs a Python processor; it has no signature to show")
            self.write(svc.signature(None))
        except HttpError as exc:
            self.fail(exc.status, exc.message, as_json=False)

    async def post(self, entry: str):
        try:
            route = self.gateway.route(entry)
            self.authorize(route, self.request.path)
            svc = self.gateway.service(route.choose())
            self.metric_service = svc.name
            ctype = self.request.headers.get("Content-Type", "")
            try:
                job, as_json = svc.make_job(self.request.body, ctype)
            except BadInput as exc:
                raise HttpError(400, exc.message) from None
            result = await self.call(svc, job)
        except HttpError as exc:
            self.fail(exc.status, exc.message, as_json=False)
            return
        if job.kind == "process":
            body, status = result
            self.set_status(status)
            self.finish(body)
        elif as_json:
            self.set_header("Content-Type", "application/json")
            self.finish(eas.format_json(result))
        else:
            self.set_header("Content-Type", "application/octet-stream")
            self.finish(eas.format_proto(result))


def _resolve_tf(gateway: Gateway, model: str, version: str | None, label: str | None) -> tuple[Route, ServiceRuntime]:
    route = gateway.route(model)
    if label:
        name = model if label in ("stable", "latest") else label
        if name not in dict(route.targets):
            raise HttpError(404, f"Servable not found for request: Specific({model}, label {label})")
        svc = gateway.service(name)
    else:
        svc = gateway.service(route.choose())
    if version is not None and str(svc.spec.get("version")) != version:
        raise HttpError(404, f"Servable not found for request: Specific({model}, {version}); "
                             f"version {svc.spec.get('version')} is current")
    return route, svc


class TfServingHandler(BaseHandler):
    async def get(self, model, version=None, label=None, what=None):
        try:
            route, svc = _resolve_tf(self.gateway, model, version, label)
            self.authorize(route, self.request.path)
            self.metric_service = svc.name
            if what == "/metadata":
                if svc.kind is None:
                    raise HttpError(503, f"service {svc.name} has no ready instance yet")
                self.write(tfserving.metadata(model, svc.spec["version"], svc.signatures))
            else:
                if not any(i.ready for i in svc.instances):
                    raise HttpError(503, f"service {svc.name} has no ready instance")
                self.write(tfserving.status(svc.spec["version"]))
        except HttpError as exc:
            self.fail(exc.status, exc.message)

    async def post(self, model, version=None, label=None, verb=None):
        try:
            if verb != "predict":
                raise HttpError(404, f":{verb} is not served; use :predict")
            route, svc = _resolve_tf(self.gateway, model, version, label)
            self.authorize(route, self.request.path)
            self.metric_service = svc.name
            names = [t["name"] for t in svc.signature(None)["inputs"]]
            try:
                sig_name, inputs, style = tfserving.parse(self.request.body, names)
                outputs = await self.run_tensors(svc, sig_name, inputs, None)
            except BadInput as exc:
                raise HttpError(400, exc.message) from None
        except HttpError as exc:
            self.fail(exc.status, exc.message)
            return
        self.set_header("Content-Type", "application/json")
        self.finish(tfserving.format(outputs, style))


class V2Handler(BaseHandler):
    async def get(self, model, version=None, what=None):
        try:
            route = self.gateway.route(model)
            self.authorize(route, self.request.path)
            svc = self.gateway.service(route.choose())
            self.metric_service = svc.name
            if what == "/ready":
                ready = any(i.ready for i in svc.instances)
                self.set_status(200 if ready else 503)
                self.finish(json.dumps({"name": model, "ready": ready}))
                return
            self.write(v2.model_metadata(model, svc.spec["version"], svc.signature(None)))
        except HttpError as exc:
            self.fail(exc.status, exc.message)

    async def post(self, model, version=None, what=None):
        try:
            if what != "/infer":
                raise HttpError(404, "POST /v2/models/<name>/infer")
            route = self.gateway.route(model)
            self.authorize(route, self.request.path)
            svc = self.gateway.service(route.choose())
            self.metric_service = svc.name
            try:
                inputs, wanted, as_binary, request_id = v2.parse(
                    self.request.body, self.request.headers.get("Inference-Header-Content-Length"))
                outputs = await self.run_tensors(svc, None, inputs, wanted)
            except BadInput as exc:
                raise HttpError(400, exc.message) from None
        except HttpError as exc:
            self.fail(exc.status, exc.message)
            return
        body, headers = v2.format(model, svc.spec["version"], outputs, as_binary, request_id)
        for k, v in headers.items():
            self.set_header(k, v)
        self.finish(body)


class V2ServerHandler(BaseHandler):
    def get(self, what=""):
        if what in ("/health/live", "/health/ready"):
            self.finish(json.dumps({"live": True} if what.endswith("live") else {"ready": True}))
        else:
            from pai_lab._version import __version__

            self.finish(json.dumps({"name": "pai_lab", "version": __version__, "extensions": ["binary_tensor_data"]}))


class MetricsHandler(web.RequestHandler):
    def initialize(self, gateway: Gateway):
        self.gateway = gateway

    def get(self):
        wanted = self.gateway.metrics_token
        if wanted:  # Prometheus sends `Authorization: Bearer <token>` (its authorization/bearer_token setting)
            given = self.request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), wanted.encode()):
                self.set_status(401)
                self.set_header("WWW-Authenticate", 'Bearer realm="pai_lab metrics"')
                self.finish("send `Authorization: Bearer <metrics token>` (PaiLabApp.serving_metrics_token)")
                return
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.gateway.metrics.registry))


class AdminHandler(web.RequestHandler):
    """The control plane's door: a shared secret, never exposed to service callers."""

    def initialize(self, gateway: Gateway):
        self.gateway = gateway

    def check_xsrf_cookie(self):
        return None

    def prepare(self):
        given = self.request.headers.get("X-Pai-Lab-Gateway-Secret", "")
        if not hmac.compare_digest(given.encode(), self.gateway.secret.encode()):
            raise web.HTTPError(403)

    def get(self, what, service=None, instance=None):
        if what == "status":
            self.write({"pid": os.getpid(),
                        "services": {n: s.status() for n, s in self.gateway.services.items()},
                        "routes": {e: dict(r.targets) for e, r in self.gateway.routes.items()}})
        else:
            raise web.HTTPError(404)

    def put(self, what, service=None, instance=None):
        if what != "state":
            raise web.HTTPError(404)
        self.gateway.apply_state(json.loads(self.request.body))
        self.write({"ok": True})

    def delete(self, what, service=None, instance=None):
        if what != "instances":
            raise web.HTTPError(404)
        svc = self.gateway.services.get(service)
        if svc is None or not svc.delete_instance(instance):
            raise web.HTTPError(404)
        self.write({"ok": True})


def make_app(gateway: Gateway) -> web.Application:
    kw = {"gateway": gateway}
    model = r"([^/:]+)"
    return web.Application([
        (r"/api/predict/([^/]+)/?", EasHandler, kw),
        (rf"/v1/models/{model}(?:/versions/(\d+))?(?:/labels/([^/:]+))?(/metadata)?/?", TfServingHandler, kw),
        (rf"/v1/models/{model}(?:/versions/(\d+))?(?:/labels/([^/:]+))?:(\w+)", TfServingHandler, kw),
        (r"/v2(/health/live|/health/ready)?/?", V2ServerHandler, kw),
        (rf"/v2/models/{model}(?:/versions/([^/]+))?(/ready|/infer)?/?", V2Handler, kw),
        (r"/metrics", MetricsHandler, kw),
        (r"/_admin/(status|state)", AdminHandler, kw),
        (r"/_admin/(instances)/([^/]+)/([^/]+)", AdminHandler, kw),
    ], compress_response=False)


async def serve(host: str, port: int, state_dir: Path, secret: str, metrics_token: str = "") -> None:
    gateway = Gateway(state_dir, secret, metrics_token)
    server = httpserver.HTTPServer(make_app(gateway), xheaders=False, idle_connection_timeout=3600,
                                   max_body_size=512 << 20)
    sockets = __import__("tornado.netutil", fromlist=["bind_sockets"]).bind_sockets(port, host, backlog=1024)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    gateway.watchdog = asyncio.create_task(gateway.watch_memory())
    ready = state_dir / "gateway.json"
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"port": bound, "host": host, "pid": os.getpid()}))
    tmp.replace(ready)
    log.info("pai_lab gateway listening on %s:%d", host, bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    await gateway.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pai_lab.serving.gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.ERROR)  # one line per request would cost more than routing
    secret = os.environ.get(SECRET_ENV) or secrets.token_hex(16)
    try:
        import uvloop  # noqa: F401 - faster loop when present

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port, Path(args.state_dir), secret, os.environ.get(METRICS_TOKEN_ENV, "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
