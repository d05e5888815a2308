"""Where a job's ranks go: all-or-nothing placement on the Dask workers' slots, and the shape of
the embedded LocalCluster (its threads and memory, split from the machine's real totals)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pai_lab.training import spec as specs


@dataclass
class Slot:
    address: str
    gpus: list[int] = field(default_factory=list)


def place(
    ranks: list[specs.RankPlan], workers: dict[str, dict], busy: dict[str, int], gpus_busy: dict[str, set[int]]
) -> tuple[list[Slot] | None, str]:
    """All-or-nothing placement: one slot (a worker thread) per rank, GPUs from worker resources.

    ``workers`` maps an address to ``{"nthreads": n, "gpus": g}``. Ranks spread over the workers
    with the most free slots. Returns the slots in rank order, or None and why it cannot be placed.
    """
    free = {a: w["nthreads"] - busy.get(a, 0) for a, w in workers.items()}
    free_at_start = sum(max(f, 0) for f in free.values())
    free_gpus = {
        a: [g for g in range(int(w.get("gpus", 0))) if g not in gpus_busy.get(a, set())] for a, w in workers.items()
    }
    slots: list[Slot | None] = [None] * len(ranks)
    order = sorted(range(len(ranks)), key=lambda i: -ranks[i].resources.gpu)
    for i in order:
        need = ranks[i].resources.gpu
        candidates = [a for a in workers if free[a] > 0 and len(free_gpus[a]) >= need]
        if not candidates:
            total = sum(w["nthreads"] for w in workers.values())
            if need:
                have = {a: len(g) for a, g in free_gpus.items() if g}
                return None, (
                    f"waiting for a worker with {need} free GPU(s) for {ranks[i].role}-{ranks[i].index}"
                    f" (free GPUs: {have or 'none'}); give Dask workers GPU resources "
                    "(dask worker --resources GPU=N) or lower the *_spec"
                )
            return None, (
                f"waiting for {len(ranks)} rank slots; the Dask cluster has {total} worker thread(s), "
                f"{free_at_start} free; add workers or threads, or stop "
                "another job"
            )
        best = max(candidates, key=lambda a: (free[a], len(free_gpus[a])))
        free[best] -= 1
        slots[i] = Slot(best, free_gpus[best][:need])
        free_gpus[best] = free_gpus[best][need:]
    return slots, ""  # type: ignore[return-value]


class JobQueue:
    """The jobs waiting for slots, in PAI's order: higher priority first, then submission order.

    Only the first job that the cluster could hold at all may take slots, so a full cluster hands the
    next free slot to the most urgent job; a job that would not fit even on an empty cluster (more ranks
    than threads, GPUs nobody offers) waits without holding up the others."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._order = itertools.count()
        self._waiting: dict[str, tuple[int, int]] = {}  # job id -> (priority, arrival)
        self._ranks: dict[str, list[specs.RankPlan]] = {}
        self._groups: dict[str, str] = {}  # job id -> its resource group's scheduler address ("" the default)

    def join(self, job_id: str, priority: int, ranks: list[specs.RankPlan], group: str = "") -> None:
        with self._lock:
            self._waiting[job_id] = (int(priority), next(self._order))
            self._ranks[job_id] = ranks
            self._groups[job_id] = group

    def leave(self, job_id: str) -> None:
        with self._lock:
            self._waiting.pop(job_id, None)
            self._ranks.pop(job_id, None)
            self._groups.pop(job_id, None)

    def reprioritize(self, job_id: str, priority: int) -> bool:
        """Change a waiting job's priority; it keeps its place among jobs of its new priority."""
        with self._lock:
            if job_id not in self._waiting:
                return False
            self._waiting[job_id] = (int(priority), self._waiting[job_id][1])
            return True

    def ahead(self, job_id: str, fits: Callable[[list[specs.RankPlan]], bool]) -> tuple[str, int] | None:
        """The job that goes before ``job_id`` (its id and priority), or None when ``job_id`` is next.
        ``fits(ranks)``: whether the cluster, empty, could hold a job's ranks. Only jobs waiting for the
        same resource group come before it: each group's cluster has its own line."""
        with self._lock:
            group = self._groups.get(job_id, "")
            same = [j for j in self._waiting if self._groups.get(j, "") == group]
            order = sorted(same, key=lambda j: (-self._waiting[j][0], self._waiting[j][1]))
            waiting = [(j, self._waiting[j][0], self._ranks[j]) for j in order]
        for other, priority, ranks in waiting:
            if other == job_id:
                return None
            if fits(ranks):
                return other, priority
        return None


# The embedded cluster's own housekeeping, slowed to what a cluster whose tasks only wait on their ranks'
# processes needs. Dask's defaults wake its event loop some 400 times a second (a profile sample of every
# running task every 10 ms, an event-loop health tick every 20 ms on the scheduler and on each worker, a
# memory check every 100 ms): about 3% of a core, taken from the ranks training beside it, for a profile
# of tasks that only wait. Set while the LocalCluster starts (its servers read these once).
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def local_cluster_shape(
    n_workers: int, threads_per_worker: int = 0, memory_limit: str = "auto"
) -> tuple[int, int, int | str]:
    """(workers, threads per worker, memory per worker) of the embedded LocalCluster: unless set, threads
    and memory are the machine's real totals split between the workers (Dask's "auto" gives every worker
    of an in-process cluster the whole memory, and a fixed thread count claims cores that are not there)."""
    from distributed.system import MEMORY_LIMIT  # the machine's memory, or its cgroup limit

    n_workers = max(1, int(n_workers or 2))
    threads = int(threads_per_worker or 0) or max(1, _cpu_count() // n_workers)
    memory: int | str = memory_limit or "auto"
    if memory == "auto":
        memory = int(MEMORY_LIMIT // n_workers)
    return n_workers, threads, memory


def _cpu_count() -> int:
    try:
        from dask.system import CPU_COUNT  # honours cgroup CPU quotas and affinity

        return int(CPU_COUNT)
    except ImportError:
        import os

        return os.cpu_count() or 1
