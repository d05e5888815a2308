"""How a job's rank reaches its WorkQueues: the rank runtime on the Dask worker opens two pipes for the
rank's process (``PAI_LAB_WORK_QUEUE_FDS``) and answers its queue calls through the worker's Dask client.
The rank's process (sandboxed or not) gets no Dask client of its own, only these operations, and every
queue name is put under its job's id, so jobs never see each other's queues.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable

ENV_VAR = "PAI_LAB_WORK_QUEUE_FDS"
ACTIONS = ("create", "take", "ack", "renew", "snapshot", "restore", "stats", "drop")
MAX_REQUEST = 64 * 2**20


def available() -> bool:
    return bool(os.environ.get(ENV_VAR))


class RankTransport:
    """The rank's side: one JSON line out, one back, a call at a time."""

    def __init__(self) -> None:
        request_fd, answer_fd = (int(fd) for fd in os.environ[ENV_VAR].split(","))
        self._out = os.fdopen(request_fd, "w", buffering=1, closefd=False)
        self._in = os.fdopen(answer_fd, "r", closefd=False)
        self._lock = threading.Lock()

    def __call__(self, **message) -> dict:
        with self._lock:
            self._out.write(json.dumps(message) + "\n")
            self._out.flush()
            line = self._in.readline()
        if not line:
            raise RuntimeError("the rank runtime no longer answers work queue calls (the rank is ending)")
        return json.loads(line)


def serve(client, job_id: str, env: dict) -> tuple[tuple[int, int], Callable[[], None]]:
    """Open the pipes for a rank of ``job_id`` (sets ``env``); returns the fds to pass to its process and
    a function to call once the process has started (closes this side's copies of them)."""
    request_read, request_write = os.pipe()
    answer_read, answer_write = os.pipe()
    env[ENV_VAR] = f"{request_write},{answer_read}"

    def answer(line: str) -> dict:
        from pai_lab.pai_tf.work_queue import scheduler_call

        try:
            message = json.loads(line)
            action, name = message.pop("action"), str(message.pop("name"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return {"error": "malformed work queue call"}
        if action not in ACTIONS or len(name) > 200:
            return {"error": f"work queue operation {action!r} is not one a rank may call"}
        allowed = {k: message[k] for k in ("holder", "token", "spec", "state", "requeue") if k in message}
        try:
            return scheduler_call(client, action=action, name=f"{job_id}/{name}", **allowed)
        except Exception as exc:  # noqa: BLE001 - the rank hears why instead of hanging
            return {"error": f"work queue {name!r}: {exc}"}

    def loop() -> None:
        with os.fdopen(request_read, "r") as requests, os.fdopen(answer_write, "w", buffering=1) as answers:
            while line := requests.readline(MAX_REQUEST):
                reply = answer(line) if line.endswith("\n") or len(line) < MAX_REQUEST else None
                while reply is None:  # a call over the bound: its rest is skipped, one answer for it
                    rest = requests.readline(MAX_REQUEST)
                    if not rest or rest.endswith("\n"):
                        reply = {"error": f"a work queue call is larger than {MAX_REQUEST // 2**20} MiB"}
                try:
                    answers.write(json.dumps(reply) + "\n")
                    answers.flush()
                except (OSError, ValueError):
                    return

    threading.Thread(target=loop, name=f"work-queues-{job_id}", daemon=True).start()

    def started() -> None:
        os.close(request_write)
        os.close(answer_read)

    return (request_write, answer_read), started
