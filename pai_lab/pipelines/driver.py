"""The driver: one thread per active run in the control plane, submitting each step to Dask once
the steps it waits on have succeeded.

It alone walks a run's nodes through PAI's states: Initialized -> ReadyToSchedule (submitted) ->
Running (the step's process started) -> Succeeded | Failed | Terminated, or Skipped (cached, or not
run because a step before it did not succeed). It carries out what members ask through the run's
``request`` (terminate, suspend) and writes the run's final state from its nodes'.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import select

from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines import platform_ops, service, step_plans
from pai_lab.pipelines.executors import STARTED_MARK, run_step
from pai_lab.pipelines.status import PipelineRunStatus as S
from pai_lab.pipelines.status import run_status
from pai_lab.pipelines.step_plans import STOP_FILE
from pai_lab.pipelines.tables import NodeRow, RunRow
from pai_lab.store import utcnow

log = logging.getLogger("pai_lab.pipelines")
POLL_SECONDS = 0.25  # steps ending and members' requests wake the driver at once; this finds steps starting


class _ShutDown(Exception):
    pass


class RunDriver(threading.Thread):
    def __init__(self, manager: PipelineDriver, run_id: str):
        super().__init__(name=f"pai-pipeline-{run_id}", daemon=True)
        self.manager = manager
        self.store = manager.platform.store
        self.run_id = run_id
        self.wake = threading.Event()
        self.futures: dict = {}
        self.pending: dict[str, dict] = {}  # node changes not yet written
        self.ending = False  # the final state is being written: a retry starts a new driver

    # -- store
    # A node's changes are kept in memory and written together, once a round (with the read of the
    # members' request), so a round that starts or ends many steps costs one transaction, not one each.
    def _update_run(self, **values) -> None:
        with self.store.transaction() as s:
            self._write_nodes(s)
            row = s.get(RunRow, self.run_id)
            for k, v in values.items():
                setattr(row, k, v)

    def _update_node(self, name: str, **values) -> None:
        self.nodes[name].update(values)
        self.pending.setdefault(name, {}).update(values)

    def _write_nodes(self, s) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        for row in s.scalars(select(NodeRow).where(NodeRow.run_id == self.run_id, NodeRow.name.in_(list(pending)))):
            for k, v in pending[row.name].items():
                setattr(row, k, v)

    def _sync(self) -> str:
        """Write the nodes' changes and read the members' request (terminate, suspend), in one transaction."""
        with self.store.transaction() as s:
            self._write_nodes(s)
            return s.scalar(select(RunRow.request).where(RunRow.id == self.run_id)) or ""

    def _load(self) -> None:
        with self.store.transaction() as s:
            row = s.get(RunRow, self.run_id)
            self.graph = manifests.check(row.manifest)
            self.arguments = dict(row.arguments)
            self.cache = row.cache
            self.sandbox = row.sandbox
            self.attempt = row.attempt
            self.work_dir = Path(row.work_dir)
            self.workspace_id = row.workspace_id
            self.user = row.created_by
            self.nodes = {
                n.name: {
                    "status": n.status,
                    "cached": n.cached,
                    "outputs": n.outputs or {},
                    "node_id": n.node_id,
                    "work_dir": n.work_dir,
                    "reason": n.reason,
                }
                for n in s.scalars(select(NodeRow).where(NodeRow.run_id == self.run_id))
            }

    # -- the loop
    def run(self) -> None:
        try:
            self._drive()
        except _ShutDown:
            log.info("run %s: the control plane stops; the run is reconciled when it starts again", self.run_id)
        except Exception as exc:  # a bug or a lost cluster: the run fails with the reason, never hangs
            self.ending = True
            log.exception("run %s: driver failed", self.run_id)
            self._stop_steps()
            self._update_run(
                status=S.Failed, reason=f"the run's driver failed: {exc}", request="", finished_at=utcnow()
            )
        finally:
            if self.ending:
                self._close_runners()
            self.manager.forget(self)

    def _drive(self) -> None:
        self._load()
        (self.work_dir / STOP_FILE).unlink(missing_ok=True)
        self._update_run(status=S.WorkflowServiceStarting)
        from pai_lab.training.manager import get_manager

        self.client = get_manager(self.manager.platform).client()  # the training area's Dask client
        self._update_run(status=S.Running, started_at=utcnow())
        suspended = False
        while True:
            if self._shutting_down():
                self._stop_steps()
                return  # the next start reconciles the run
            request = self._sync()
            if request == "terminate":
                self._terminate()
                return
            if (request == "suspend") != suspended:
                suspended = request == "suspend"
                self._update_run(status=S.Suspended if suspended else S.Running)
            self.wake.clear()  # a step that ends from here on wakes the wait below
            self._collect()
            if not suspended:
                self._schedule()
            if not self.futures:
                final = run_status({n: v["status"] for n, v in self.nodes.items()})
                if final:
                    self._finish(final)
                    return
            if not self.pending:  # changes are written at once (next round); else wait for a step to end
                self.wake.wait(POLL_SECONDS)

    def _shutting_down(self) -> bool:
        from pai_lab.training.manager import get_manager

        return self.manager.closing or bool(getattr(get_manager(self.manager.platform), "closing", False))

    def _collect(self) -> None:
        for name, future in list(self.futures.items()):
            node = self.nodes[name]
            if future.done():
                if future.cancelled() and self._shutting_down():
                    raise _ShutDown  # the cluster goes with the control plane: the next start reconciles
                del self.futures[name]
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker, a cancelled task
                    result = {"exit_code": -1, "error": f"the step's Dask task failed: {exc}", "tail": []}
                self._record(name, result)
            elif node["status"] == S.ReadyToSchedule and (Path(node["work_dir"]) / STARTED_MARK).exists():
                self._update_node(name, status=S.Running, started_at=utcnow())

    def _record(self, name: str, result: dict) -> None:
        now = utcnow()
        if result.get("error") == "terminated":
            self._update_node(name, status=S.Terminated, reason="terminated", finished_at=now)
        elif result.get("error"):
            tail = "\n".join(result.get("tail") or [])
            reason = result["error"] + (f"; last lines of its log:\n{tail}" if tail else "")
            self._update_node(
                name, status=S.Failed, reason=reason, finished_at=now, outputs=result.get("outputs") or {}
            )
        else:
            if self.nodes[name]["status"] == S.ReadyToSchedule:  # ended before a round saw it start
                self._update_node(name, started_at=now)
            self._update_node(name, status=S.Succeeded, reason="", finished_at=now, outputs=result["outputs"])

    def _schedule(self) -> None:
        for name, step in self.graph.steps.items():
            node = self.nodes[name]
            if node["status"] != S.Initialized:
                continue
            deps = [self.nodes[d] for d in step.depends]
            blocked = next(
                (
                    d
                    for d, n in zip(step.depends, deps)
                    if n["status"] in (S.Failed, S.Terminated, S.Unknown)
                    or (n["status"] == S.Skipped and not n["cached"])
                ),
                None,
            )
            if blocked:
                self._update_node(
                    name, status=S.Skipped, reason=f"not run: step {blocked!r} did not succeed", finished_at=utcnow()
                )
                continue
            if all(n["status"] == S.Succeeded or (n["status"] == S.Skipped and n["cached"]) for n in deps):
                self._start(name, step)

    def _start(self, name: str, step: manifests.StepPlan) -> None:
        node = self.nodes[name]
        params, artifacts, keyed = step_plans.resolve(self, step, node)
        key = service.cache_key(step.operator, keyed, artifacts)
        platform_step = step.kind == "builtin" and platform_ops.is_platform(
            (step.operator.get("spec") or {}).get("builtin", {}).get("name")
        )
        if self.cache and not platform_step:  # a platform step makes its objects anew each run
            hit = step_plans.cached(self, key)
            if hit is not None:
                now = utcnow()
                self._update_node(
                    name,
                    status=S.Skipped,
                    cached=True,
                    cache_key=key,
                    inputs={"parameters": params, "artifacts": artifacts},
                    outputs=hit[1],
                    started_at=now,
                    finished_at=now,
                    reason=f"cached: the same operator and inputs succeeded in run {hit[0]}",
                )
                return
        plan = step_plans.task_plan(self, step, node, params, artifacts)
        self._update_node(
            name,
            status=S.ReadyToSchedule,
            cached=False,
            cache_key=key,
            attempt=self.attempt,
            inputs={"parameters": params, "artifacts": artifacts},
            started_at=None,
            finished_at=None,
        )
        (Path(node["work_dir"]) / STARTED_MARK).unlink(missing_ok=True)  # a retry's mark is its own
        if platform_step:  # acts on the platform as the run's submitter: in the control plane, not on Dask
            future = platform_ops.submit(self.manager.platform, plan)
        else:
            future = self.client.submit(
                run_step, plan, key=f"pai-pipeline-{self.run_id}-{name}-{self.attempt}", pure=False
            )
        future.add_done_callback(lambda _f: self.wake.set())
        self.futures[name] = future

    # -- ending
    def _close_runners(self) -> None:
        """End the run's warm step runners on every worker (they would end idle anyway)."""
        client = getattr(self, "client", None)
        if client is None:
            return
        from pai_lab.pipelines.runner import close_runners, close_runners_soon

        close_runners(self.run_id)  # workers of an in-process cluster share this process's runners
        try:
            client.run(close_runners_soon, self.run_id, wait=False)  # a lost worker must not hold the run's end
        except Exception:  # a worker that is gone took its runners with it
            log.debug("run %s: could not reach every worker to end its runners", self.run_id, exc_info=True)

    def _stop_steps(self) -> None:
        if self.futures:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            (self.work_dir / STOP_FILE).write_text("stop")
            for future in self.futures.values():
                try:
                    future.result(timeout=15)  # the task ends its step's processes, then returns
                except Exception:  # noqa: BLE001, S110
                    pass

    def _terminate(self) -> None:
        self.ending = True
        self._stop_steps()
        now = utcnow()
        for name, node in self.nodes.items():
            if node["status"] in S.RUNNING:
                self._update_node(name, status=S.Terminated, reason="terminated", finished_at=now)
            elif node["status"] == S.Initialized:
                self._update_node(name, status=S.Skipped, reason="not run: the run was terminated", finished_at=now)
        self.futures.clear()
        self._update_run(status=S.Terminated, request="", finished_at=now)

    def _finish(self, final: str) -> None:
        self.ending = True
        reason = ""
        if final == S.Failed:
            failed = next(n for n, v in self.nodes.items() if v["status"] == S.Failed)
            reason = f"step {failed!r} failed: {self.nodes[failed]['reason']}"
        with self.store.transaction() as s:
            self._write_nodes(s)
            s.flush()
            row = s.get(RunRow, self.run_id)
            nodes = service._nodes(s, self.run_id)
            row.outputs = [a.model_dump() for a in service.run_outputs(row, nodes)]
            row.status, row.reason, row.request, row.finished_at = final, reason, "", utcnow()


class PipelineDriver:
    """The pipelines area's long-lived part: the drivers of the active runs."""

    def __init__(self, platform):
        self.platform = platform
        self.drivers: dict[str, RunDriver] = {}
        self.lock = threading.Lock()
        self.closing = False

    def launch(self, run_id: str) -> None:
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
            driver = RunDriver(self, run_id)
            self.drivers[run_id] = driver
        driver.start()

    def poke(self, run_id: str) -> None:
        driver = self.drivers.get(run_id)
        if driver is not None and driver.is_alive():
            driver.wake.set()
            return
        # a run whose driver is gone (suspended before a restart): settle the request here
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
        for driver in list(self.drivers.values()):
            driver.wake.set()
        for driver in list(self.drivers.values()):
            driver.join(20)


def get_driver(platform) -> PipelineDriver:
    return platform.manager("pipelines", PipelineDriver)
