"""PAI-TF's WorkQueue on Dask: one global queue of work items that every rank pulls from, so fast ranks
take more items and a slow one fewer.

    from pai_lab.pai_tf import WorkQueue
    wq = WorkQueue(["s3://b/part-0.csv", "s3://b/part-1.csv"], num_epochs=2, shuffle=True)
    for item in wq:                    # or wq.take() until None, or wq.input_dataset() in tf.data
        ...
    wq.save("s3://b/ckpt/work_queue.json")   # beside the model's checkpoint; wq.restore(...) later

The queues live in a scheduler extension (:class:`WorkQueueExtension`), so a rank's or a worker's death
loses nothing: the item the dead rank held comes back once its lease lapses (the holder renews it
while alive). Inside a job's rank the calls go through the rank runtime (:mod:`pai_lab.pai_tf.broker`),
which scopes the queue's name to the job; elsewhere through a Dask client (``client=`` or the current).
The rules themselves are :mod:`pai_lab.pai_tf.work_items`.
"""

from __future__ import annotations

import html
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

from pai_lab.pai_tf import work_items
from pai_lab.pai_tf.work_items import DEFAULT_LEASE_SECONDS, QueueState

HANDLER = "pai_lab_work_queue"
MAX_QUEUES = 256
MAX_EPOCHS = 1000
MAX_SLICES = 100_000
IDLE_SECONDS = 3600.0


class WorkQueueExtension:
    """The scheduler extension holding every queue (:func:`_install` adds it); its one handler answers
    the queue's operations. When it holds MAX_QUEUES, a new queue makes room by forgetting finished ones,
    then ones unused for an hour."""

    name = "pai-lab-work-queues"

    def __init__(self) -> None:
        self.queues: dict[str, QueueState] = {}
        self.used: dict[str, float] = {}

    def _make_room(self, now: float) -> bool:
        for name, queue in list(self.queues.items()):
            finished = not queue.pending and not queue.leases
            if finished or now - self.used.get(name, now) > IDLE_SECONDS:
                self.queues.pop(name)
                self.used.pop(name, None)
        return len(self.queues) < MAX_QUEUES

    def handle(self, action: str, name: str, holder: str = "", token=None, spec=None, state=None, requeue=False):
        now = time.monotonic()
        queue = self.queues.get(name)
        if queue is not None:
            self.used[name] = now
        if action == "create":
            if queue is not None:
                if queue.digest != spec["digest"]:
                    return {"error": f"a work queue named {name!r} already holds other works; give another name"}
                return {"stats": queue.stats()}
            if spec.get("items") is None:
                return {"missing": True}
            problem = _check_spec(spec)
            if problem:
                return {"error": problem}
            if len(self.queues) >= MAX_QUEUES and not self._make_room(now):
                return {"error": f"this cluster already holds {MAX_QUEUES} work queues; drop finished ones"}
            self.queues[name] = QueueState.fill(
                spec["items"],
                spec["digest"],
                spec["num_epochs"],
                spec["shuffle"],
                spec["seed"],
                spec["lease_seconds"],
            )
            self.used[name] = now
            return {"stats": self.queues[name].stats()}
        if action == "drop":
            self.used.pop(name, None)
            return {"dropped": self.queues.pop(name, None) is not None}
        if queue is None:
            return {"error": f"no work queue named {name!r} (dropped, or never made)"}
        if action == "take":
            return queue.take(holder, now)
        if action == "ack":
            return {"acked": queue.ack(holder, token)}
        if action == "renew":
            return {"renewed": queue.renew(holder, now)}
        if action == "snapshot":
            return {"state": queue.snapshot()}
        if action == "restore":
            if not isinstance(state, dict) or not all(
                _strings(state.get(k, []), work_items.MAX_ITEMS) for k in ("remaining", "in_flight")
            ):
                return {"error": "a work queue state is {digest, remaining: [items], in_flight: [items]}"}
            return {"restored": queue.restore(state, requeue), "stats": queue.stats()}
        if action == "stats":
            return {"stats": queue.stats()}
        return {"error": f"unknown work queue operation {action!r}"}


def _strings(values, most: int) -> bool:
    return (
        isinstance(values, list | tuple)
        and len(values) <= most
        and all(isinstance(v, str) and len(v) <= work_items.MAX_ITEM_CHARS for v in values)
    )


def _check_spec(spec: dict) -> str:
    """What is wrong with a queue's spec (the scheduler is shared: every bound is checked there too)."""
    epochs, lease, seed = spec.get("num_epochs"), spec.get("lease_seconds"), spec.get("seed")
    if not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
        return f"num_epochs: give 1 to {MAX_EPOCHS}"
    if not _strings(spec["items"], work_items.MAX_ITEMS // epochs):
        return f"at most {work_items.MAX_ITEMS} work items in all epochs, of {work_items.MAX_ITEM_CHARS} characters"
    if not isinstance(lease, int | float) or not 0.5 <= lease <= 86400:
        return "lease_seconds: give 0.5 to 86400"
    if seed is not None and not isinstance(seed, int):
        return "seed: a whole number or None"
    if not isinstance(spec.get("digest"), str) or len(spec["digest"]) > 128:
        return "digest: the works' digest"
    return ""


def _install(dask_scheduler=None) -> bool:
    """Runs on the scheduler: add the extension unless it is there (idempotent, on its event loop)."""
    if HANDLER not in dask_scheduler.handlers:
        extension = WorkQueueExtension()
        dask_scheduler.extensions[WorkQueueExtension.name] = extension
        dask_scheduler.handlers[HANDLER] = extension.handle
    return True


_installed: set[str] = set()


def scheduler_call(client, **message) -> dict:
    """One operation on the scheduler's queues through a Dask client (the extension is added first)."""
    address = client.scheduler.address
    if address not in _installed:
        client.run_on_scheduler(_install)
        _installed.add(address)
    answer = client.sync(client.scheduler.pai_lab_work_queue, **message)
    if answer is None:  # no such handler: a scheduler started again at the same address lacks the extension
        client.run_on_scheduler(_install)
        answer = client.sync(client.scheduler.pai_lab_work_queue, **message)
    return answer


class _DaskTransport:
    def __init__(self, client=None):
        if client is None:
            from distributed import get_client

            client = get_client()
        self.client = client

    def __call__(self, **message) -> dict:
        return scheduler_call(self.client, **message)


def _transport(client):
    from pai_lab.pai_tf import broker

    if client is None and broker.available():
        return broker.RankTransport()
    return _DaskTransport(client)


def _count_rows(storage_options):
    def count(work: str) -> int | None:
        from pai_lab.pai_tf.table_io import count_rows, is_table

        return count_rows(work, storage_options) if is_table(work) else None

    return count


class WorkQueue:
    """``pai.data.WorkQueue(works, num_epochs=1, shuffle=True, seed=None, prefix=None, num_slices=None,
    num_clients=1, name='work_queue')`` with Dask underneath. ``lease_seconds``: how long an item stays
    with a holder that stopped renewing it (its rank died) before it goes to another."""

    def __init__(
        self,
        works: Sequence[str],
        num_epochs: int = 1,
        shuffle: bool = True,
        seed: int | None = None,
        prefix: str | None = None,
        num_slices: int | None = None,
        num_clients: int = 1,
        name: str = "work_queue",
        *,
        client=None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        storage_options: dict | None = None,
    ):
        if isinstance(works, str) or not works:
            raise ValueError("works: give a non-empty list of file or table names")
        works = [str(w) for w in works]
        if len(works) > work_items.MAX_ITEMS or any(len(w) > work_items.MAX_ITEM_CHARS for w in works):
            raise ValueError(f"works: at most {work_items.MAX_ITEMS} names of {work_items.MAX_ITEM_CHARS} characters")
        if not 1 <= int(num_epochs) <= MAX_EPOCHS:
            raise ValueError(f"num_epochs: give 1 to {MAX_EPOCHS}, got {num_epochs}")
        if num_slices is not None and not 1 <= int(num_slices) <= MAX_SLICES:
            raise ValueError(f"num_slices: give 1 to {MAX_SLICES} (or None: no slicing), got {num_slices}")
        if not 0.5 <= float(lease_seconds) <= 86400:
            raise ValueError(f"lease_seconds: give 0.5 to 86400, got {lease_seconds}")
        self.works, self.name, self.prefix = works, name, prefix or ""
        self.num_epochs, self.shuffle, self.seed = int(num_epochs), bool(shuffle), seed
        self.num_clients, self.lease_seconds = num_clients, float(lease_seconds)
        self.digest = work_items.digest(works)
        self.holder = f"{os.environ.get('PAI_LAB_POD') or socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._call = _transport(client)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        spec: dict = {"digest": self.digest, "items": None}
        answer = self._ask("create", spec=spec)
        if answer.get("missing"):  # the first to arrive fills it; the others attach to the same queue
            items = work_items.expand(works, num_slices, _count_rows(storage_options))
            spec.update(items=items, num_epochs=self.num_epochs, shuffle=self.shuffle, seed=seed)
            spec["lease_seconds"] = self.lease_seconds
            answer = self._ask("create", spec=spec)
        self.capacity = answer["stats"]["capacity"]

    def _ask(self, op: str, **message) -> dict:
        answer = self._call(action=op, name=self.name, holder=self.holder, **message)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self._ask("renew")
            except Exception:  # noqa: BLE001 - the scheduler is away for a moment: try again later
                continue

    # ---------------------------------------------------------------- taking

    def take(self, timeout: float | None = None) -> str | None:
        """The next work item (``prefix`` in front), or None once every item was taken and finished.
        Taking again finishes the item taken before; it waits while others hold items that may return."""
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew_loop, name=f"{self.name}-lease", daemon=True)
            self._renewer.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            answer = self._ask("take")
            if "item" in answer:
                return self.prefix + answer["item"]
            if answer.get("done"):
                return None
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"work queue {self.name!r}: items are still out with other ranks")
            time.sleep(answer["wait"])

    def ack(self) -> None:
        """Finish the item in hand without taking another (the last one of a rank, before it ends)."""
        self._ask("ack")

    def __iter__(self) -> Iterator[str]:
        while (item := self.take()) is not None:
            yield item

    def input_producer(self) -> Iterator[str]:
        """The queue's local proxy: the items this rank takes, one at a time, for a reader to consume."""
        return iter(self)

    def input_dataset(self):
        """A ``tf.data.Dataset`` of the items (strings) this rank takes; it ends when the queue does."""
        import tensorflow as tf

        return tf.data.Dataset.from_generator(
            lambda: iter(self), output_signature=tf.TensorSpec(shape=(), dtype=tf.string)
        )

    # ---------------------------------------------------------------- progress and checkpoints

    def stats(self) -> dict:
        return self._ask("stats")["stats"]

    def add_summary(self, step: int = 0) -> float:
        """Report ``<name>/fraction_of_<capacity>_full`` (the job's metrics and TensorBoard); returns it."""
        from pai_lab.training.metrics import report

        fraction = float(self.stats()["fraction_full"])
        report(step, **{f"{self.name}/fraction_of_{self.capacity}_full": fraction})
        return fraction

    def state_dict(self) -> dict:
        """The digest of the works and the items not handed out yet (and those in flight, for reference)."""
        return self._ask("snapshot")["state"]

    def load_state_dict(self, state: dict, requeue_in_flight: bool = False) -> bool:
        """Continue from a snapshot: True when its digest matches this queue's works; otherwise the queue
        stays as it is (the works changed: the snapshot is abandoned, as PAI does)."""
        answer = self._ask("restore", state=state, requeue=requeue_in_flight)
        if not answer["restored"]:
            import warnings

            warnings.warn(
                f"work queue {self.name!r}: the checkpoint's works differ from these; its state is abandoned",
                stacklevel=2,
            )
        return bool(answer["restored"])

    def save(self, uri: str, storage_options: dict | None = None) -> str:
        import fsspec

        with fsspec.open(uri, "w", encoding="utf-8", **(storage_options or {})) as f:
            json.dump(self.state_dict(), f)
        return uri

    def restore(self, uri: str, storage_options: dict | None = None, requeue_in_flight: bool = False) -> bool:
        import fsspec

        with fsspec.open(uri, "r", encoding="utf-8", **(storage_options or {})) as f:
            return self.load_state_dict(json.load(f), requeue_in_flight)

    def close(self, drop: bool = False) -> None:
        """Stop renewing leases (and forget the queue on the cluster with ``drop=True``)."""
        self._stop.set()
        if drop:
            self._ask("drop")

    def _repr_html_(self) -> str:
        try:
            s = self.stats()
        except Exception as exc:  # noqa: BLE001
            return f"<b>WorkQueue {html.escape(self.name)}</b>: {html.escape(str(exc))}"
        total = s["capacity"] * self.num_epochs or 1
        done = total - s["remaining"] - s["in_flight"]
        rows = "".join(f"<tr><td>{html.escape(h)}</td><td>{n}</td></tr>" for h, n in sorted(s["taken"].items()))
        return (
            f"<b>WorkQueue {html.escape(self.name)}</b> {done}/{total} done, {s['in_flight']} in flight, "
            f"{s['remaining']} waiting ({s['redelivered']} handed out again)"
            f"<progress value='{done}' max='{total}'></progress>"
            f"<table><tr><th>holder</th><th>items taken</th></tr>{rows}</table>"
        )
