"""What comes back from an instance: the jobs waiting for it, the protocol that reads the
instance's reply frames off its connection, and the hand-out of a (batched) reply to its jobs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pai_lab.serving import wire
from pai_lab.serving.gateway.errors import InstanceError

if TYPE_CHECKING:
    from pai_lab.serving.gateway.instance_runtime import Instance

log = logging.getLogger("pai_lab.gateway")


class Job:
    """One request waiting for (or inside) an instance."""

    __slots__ = ("future", "key", "kind", "on_done", "payload", "rows")

    def __init__(self, kind: str, payload, future: asyncio.Future, batchable: bool = False):
        self.kind = kind
        self.payload = payload
        self.future = future
        # called with the future as soon as it is done, in the same call (a done-callback of the
        # future would wait for the event loop's next turn); every end of a job goes through end()
        self.on_done: Callable[[asyncio.Future], None] | None = None
        self.rows = 0
        self.key: tuple | None = None
        if kind == "process":  # a Python processor's request: one row, batched if it has process_batch
            self.rows = 1
            self.key = ("process", (), (), batchable)
        elif kind == "predict":
            inputs = payload["inputs"]
            first = next(iter(inputs.values()))
            self.rows = first.shape[0] if first.ndim else 0
            # requests batch together only when they ask the same thing of same-shaped inputs
            self.key = (
                payload["signature_name"],
                tuple(payload["output_filter"] or ()),
                tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(inputs.items())),
                all(a.ndim and a.shape[0] == self.rows for a in inputs.values()),
            )

    def end(self, result=None, error: BaseException | None = None) -> None:
        """The job's answer (or failure), unless it has one already."""
        future = self.future
        if future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
        if self.on_done is not None:
            self.on_done(future)


class Replies(asyncio.Protocol):
    """The gateway's end of an instance connection once it has loaded: frames in, answers out."""

    def __init__(self, inst: Instance, closed: asyncio.Future):
        self.inst = inst
        self.closed = closed
        self.frames = wire.FrameReader()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.frames.feed(data)
        except Exception:  # noqa: BLE001 - member code wrote it: unpickling can raise anything
            log.warning("instance %s sent a malformed frame; its connection is closed", self.inst.name)
            if self.inst.writer is not None:
                self.inst.writer.close()
            self.connection_lost(None)
            return
        for request_id, status, result in messages:
            self.inst._reply(request_id, status, result)

    def eof_received(self) -> bool:
        return False  # the transport closes, and connection_lost ends the instance's connection

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def deliver(jobs: list[Job], status: str, result) -> None:
    """Each job's part of the instance's reply; a reply of the wrong shape fails the jobs it leaves
    unanswered (500) instead of leaving them waiting for their keepalive."""
    try:
        _deliver(jobs, status, result)
    except Exception as exc:  # noqa: BLE001 - the reply came from member code
        log.warning("an instance's reply did not fit its requests: %s", exc)
    for job in jobs:
        job.end(error=InstanceError(500, "the processor's reply did not match the request(s) it was given"))


def _deliver(jobs: list[Job], status: str, result) -> None:
    if status != "ok":
        code, message = result
        for job in jobs:
            job.end(error=InstanceError(code, message))
        return
    if len(jobs) == 1:
        jobs[0].end(result)
        return
    if isinstance(result, list):  # a Python processor's batch: one answer per request, in order
        for job, answer in zip(jobs, result):
            job.end(answer)
        return
    start = 0
    for job in jobs:
        end = start + job.rows
        if not job.future.done():
            job.end({k: v[start:end] for k, v in result.items()})
        start = end
