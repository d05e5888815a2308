"""Whether the Dask workers that hold a job's ranks are still in their cluster.

A worker whose host goes down (or whose process is killed) takes its rank with it, but no exit is ever
reported for that rank, and its Dask task, bound to that worker, waits for it forever. The supervisor
asks here, about once a second, whether each rank's worker is still among the scheduler's workers; one
that left fails the job at once with a reason naming the worker, and the other ranks are ended."""

from __future__ import annotations

import time

CHECK_SECONDS = 1.0


class WorkerLost(RuntimeError):
    """A rank's Dask worker left the cluster; the message is the job's reason."""

    def __init__(self, lost: dict[str, str]):
        self.lost = dict(lost)  # pod -> the worker's address
        said = ", ".join(f"{pod} ran on {worker}" for pod, worker in self.lost.items())
        super().__init__(
            f"lost the Dask worker of {len(self.lost)} rank(s) ({said}): it left the cluster while the job "
            "ran (its host went down or the worker was killed); the other ranks were ended. Submit the job "
            "again once the cluster has the workers it needs"
        )


class WorkerWatch:
    """Looks at most every ``CHECK_SECONDS`` (or at once, ``force``) whether the ranks' workers are there."""

    def __init__(self, manager, scheduler_address: str = ""):
        self.manager = manager
        self.address = scheduler_address
        self.placed: dict[str, str] = {}  # pod -> the worker it was given
        self.lost: dict[str, str] = {}
        self.checked = 0.0

    def check(self, force: bool = False) -> None:
        """Raise :class:`WorkerLost` when a rank's worker is no longer in the cluster."""
        now = time.monotonic()
        if not self.placed or (not force and now - self.checked < CHECK_SECONDS):
            return
        self.checked = now
        try:
            alive = self.manager.workers(self.address)
        except Exception:  # noqa: BLE001 - the scheduler itself away: the ranks' futures say so
            return
        lost = {pod: worker for pod, worker in self.placed.items() if worker not in alive}
        if lost:
            self.lost = lost
            raise WorkerLost(lost)
