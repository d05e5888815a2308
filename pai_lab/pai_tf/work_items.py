"""The WorkQueue's rules as plain Python: slicing tables into row ranges, filling the epochs, handing
items out under leases, and the snapshot a checkpoint keeps. No Dask here; the scheduler extension
(:mod:`pai_lab.pai_tf.work_queue`) holds one :class:`QueueState` per queue and calls it.

Semantics follow PAI-TF's ``pai.data.WorkQueue``:

* a work is a file (taken whole) or a table; with ``num_slices`` a table of R rows is cut into row
  ranges of ``max(1, R // num_slices)`` rows, written ``<table>?start=a&end=b``;
* all ``num_epochs`` copies are queued up front, each shuffled with its own seed (``seed + epoch``),
  and epochs are no barriers: a fast rank may start epoch e+1 while others finish epoch e;
* an item goes to one holder at a time. Its lease lapses when the holder stops renewing it (the rank
  died); it then goes back to the front of the queue. A holder's next ``take`` acknowledges its
  previous item, so the queue ends only when every item was taken and finished;
* a snapshot keeps the digest of the works list and the items not yet handed out (PAI's at-most-once
  rule: items in flight at save time are not handed out again after a restore, unless asked for).
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

MAX_ITEMS = 1_000_000
MAX_ITEM_CHARS = 4096
DEFAULT_LEASE_SECONDS = 30.0


def digest(works: Sequence[str]) -> str:
    """What a checkpoint compares: the works list as given, comma-joined (PAI), hashed to bound its size."""
    return hashlib.sha256(",".join(works).encode("utf-8")).hexdigest()


def slice_rows(table: str, rows: int, num_slices: int) -> list[str]:
    """``table`` of ``rows`` rows as row ranges: slice size ``max(1, rows // num_slices)``; the last
    range takes the remainder (R=1000, 30 slices -> 31 ranges, the last [990, 1000))."""
    if rows <= 0:
        return []
    size = max(1, rows // num_slices)
    count = rows // size + (1 if rows % size else 0)
    sep = "&" if "?" in table else "?"
    return [f"{table}{sep}start={i * size}&end={min(rows, (i + 1) * size)}" for i in range(count)]


def row_range(item: str) -> tuple[str, int | None, int | None]:
    """``<table>?start=a&end=b`` -> (table, a, b); an item without a range -> (item, None, None)."""
    parts = urlsplit(item)
    query = dict(parse_qsl(parts.query))
    if "start" not in query or "end" not in query:
        return item, None, None
    rest = "&".join(f"{k}={v}" for k, v in parse_qsl(parts.query) if k not in ("start", "end"))
    base = item.split("?", 1)[0] + (f"?{rest}" if rest else "")
    return base, int(query["start"]), int(query["end"])


def expand(works: Sequence[str], num_slices: int | None, count_rows: Callable[[str], int | None]) -> list[str]:
    """The work items of one epoch: files whole, tables (``count_rows`` gives a number) in row ranges."""
    items: list[str] = []
    for work in works:
        rows = count_rows(work) if num_slices else None
        items += [work] if rows is None else slice_rows(work, rows, num_slices or 1)
    return items


@dataclass
class Lease:
    item: str
    holder: str
    deadline: float


@dataclass
class QueueState:
    """One queue: the items still to hand out (in order), the ones out on a lease, counters."""

    digest: str
    capacity: int  # items per epoch
    pending: deque = field(default_factory=deque)
    leases: dict[int, Lease] = field(default_factory=dict)
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    taken: dict[str, int] = field(default_factory=dict)
    redelivered: int = 0
    next_token: int = 1

    @classmethod
    def fill(
        cls,
        items: Sequence[str],
        works_digest: str,
        num_epochs: int = 1,
        shuffle: bool = True,
        seed: int | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> QueueState:
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        pending: deque = deque()
        for epoch in range(num_epochs):
            order = list(items)
            if shuffle:
                random.Random(seed + epoch).shuffle(order)  # a permutation of its own per epoch
            pending.extend(order)
        return cls(works_digest, len(items), pending, lease_seconds=lease_seconds)

    def _reclaim(self, now: float) -> None:
        lapsed = sorted((t for t, lease in self.leases.items() if lease.deadline <= now), reverse=True)
        for token in lapsed:
            self.pending.appendleft(self.leases.pop(token).item)  # first in line again
            self.redelivered += 1

    def ack(self, holder: str, token: int | None = None) -> int:
        """Finish ``token`` (or every item ``holder`` holds); a lapsed lease is not the holder's any more."""
        done = [t for t, lease in self.leases.items() if lease.holder == holder and token in (None, t)]
        for t in done:
            del self.leases[t]
        return len(done)

    def renew(self, holder: str, now: float) -> int:
        held = [lease for lease in self.leases.values() if lease.holder == holder]
        for lease in held:
            lease.deadline = now + self.lease_seconds
        return len(held)

    def take(self, holder: str, now: float) -> dict:
        """``{"item", "token"}``; ``{"wait": seconds}`` while others still hold items that may come back;
        ``{"done": True}`` once every item was taken and finished."""
        self.ack(holder)  # taking again means the previous item is finished
        self._reclaim(now)
        if self.pending:
            item = self.pending.popleft()
            token = self.next_token
            self.next_token += 1
            self.leases[token] = Lease(item, holder, now + self.lease_seconds)
            self.taken[holder] = self.taken.get(holder, 0) + 1
            return {"item": item, "token": token}
        if self.leases:
            soonest = min(lease.deadline for lease in self.leases.values())
            return {"wait": max(0.02, min(0.1, soonest - now))}  # others may finish, or their lease lapse
        return {"done": True}

    def snapshot(self) -> dict:
        return {
            "digest": self.digest,
            "capacity": self.capacity,
            "remaining": list(self.pending),
            "in_flight": [lease.item for _t, lease in sorted(self.leases.items())],
        }

    def restore(self, state: dict, requeue_in_flight: bool = False) -> bool:
        """Replace the queue's content by a snapshot's when its digest matches (False: it does not)."""
        if state.get("digest") != self.digest:
            return False
        items = list(state.get("in_flight", [])) if requeue_in_flight else []
        self.pending = deque(items + list(state.get("remaining", [])))
        self.leases.clear()
        return True

    def stats(self) -> dict:
        remaining = len(self.pending)
        return {
            "capacity": self.capacity,
            "remaining": remaining,
            "in_flight": len(self.leases),
            "fraction_full": remaining / self.capacity if self.capacity else 0.0,
            "taken": dict(self.taken),
            "redelivered": self.redelivered,
        }
