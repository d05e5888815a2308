"""The pipelines area's long-lived part: the drivers of the active runs in this control plane (one
:class:`pai_lab.pipelines.driver.RunDriver` thread each), and the watch that takes over the runs whose
driving control plane is gone (:mod:`pai_lab.pipelines.recovery`)."""

from __future__ import annotations

import logging
import threading

from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines import recovery
from pai_lab.pipelines.driver import RunDriver
from pai_lab.pipelines.tables import RunRow

log = logging.getLogger("pai_lab.pipelines")
WATCH_SECONDS = 5.0  # how often a control plane looks for runs whose driver is gone (recovery.reconcile)


class PipelineDriver:
    """The pipelines area's long-lived part: the drivers of the active runs."""

    def __init__(self, platform):
        self.platform = platform
        self.drivers: dict[str, RunDriver] = {}
        self.lock = threading.Lock()
        self.closing = False
        self.stopped = threading.Event()
        self.watcher: threading.Thread | None = None

    def watch(self) -> None:
        """Take over, every :data:`WATCH_SECONDS`, the runs whose driving control plane is gone (a
        teammate's server killed, or one of another host whose lease lapsed), as a restart would."""
        with self.lock:
            if self.watcher is None and not self.closing:
                self.watcher = threading.Thread(target=self._watch, name="pai-pipeline-watch", daemon=True)
                self.watcher.start()

    def _watch(self) -> None:
        while not self.stopped.wait(WATCH_SECONDS):
            try:
                resumed, failed = recovery.reconcile(self.platform, restarted=False)
            except Exception:  # a store that hiccups: the next round looks again
                log.warning("pai_lab: looking for pipeline runs whose driver is gone failed", exc_info=True)
                continue
            if resumed or failed:
                log.warning(
                    "pai_lab: the control plane driving pipeline run(s) stopped; taken over here: %s%s",
                    ", ".join(resumed) or "none",
                    f"; could not go on, marked Failed: {', '.join(failed)}" if failed else "",
                )

    def launch(self, run_id: str, graph: manifests.Graph | None = None) -> None:
        """Drive the run (``graph``: its manifest as its creation just checked it, in this process)."""
        with self.lock:
            if self.closing:
                return
            current = self.drivers.get(run_id)
            if current is not None and current.is_alive() and not current.ending:
                current.wake.set()
                return
        if current is not None and current.ending:
            current.join(30)  # it wrote the run's end a moment ago; the retry gets a driver of its own
        with self.lock:
            driver = RunDriver(self, run_id, graph)
            self.drivers[run_id] = driver
        driver.start()

    def poke(self, run_id: str) -> None:
        driver = self.drivers.get(run_id)
        if driver is not None and driver.is_alive():
            driver.wake.set()
            return
        # a run whose driver is gone (suspended before a restart): settle the request here, unless a
        # teammate's live server over the same store drives it (its driver reads the request itself)
        with self.platform.store.transaction() as s:
            row = s.get(RunRow, run_id)
            if row is None or not recovery.free(row) or not recovery.take(s, run_id, row.driver, row.lease_until):
                return
        idle = RunDriver(self, run_id)
        idle._load()
        idle._terminate()

    def forget(self, driver: RunDriver) -> None:
        with self.lock:
            if self.drivers.get(driver.run_id) is driver:
                del self.drivers[driver.run_id]

    def wait(self, run_id: str, timeout: float) -> None:
        driver = self.drivers.get(run_id)
        if driver is not None:
            driver.join(timeout)

    def close(self) -> None:
        self.closing = True
        self.stopped.set()
        for driver in list(self.drivers.values()):
            driver.wake.set()
        for driver in list(self.drivers.values()):
            driver.join(20)


def get_driver(platform) -> PipelineDriver:
    return platform.manager("pipelines", PipelineDriver)
