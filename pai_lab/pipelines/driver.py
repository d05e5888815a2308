"""The driver: one thread per active run in the control plane, submitting each step to Dask once
the steps it waits on have succeeded.

It alone walks a run's nodes through PAI's states: Initialized -> ReadyToSchedule (submitted) ->
Running (the step's process started) -> Succeeded | Failed | Terminated, or Skipped (cached, or not
run because a step before it did not succeed). It carries out what members ask through the run's
``request`` (terminate, suspend) and writes the run's final state from its nodes'.

A wide fan-out is submitted in batches (:mod:`pai_lab.pipelines.dispatch`), each running its steps one
after another in the run's warm runner, so Dask schedules a few tasks instead of one per step. A batched
step still has its own folder, log, states and times: the driver sees it start and end by the lines the
runner adds to its batch's progress file (:mod:`pai_lab.pipelines.progress`), and hands its outputs on
before the rest of its batch ends.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from pai_lab import supervision
from pai_lab.pipelines import dispatch, platform_ops, recovery, service, step_plans
from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines.executors import STARTED_MARK, WARM_KINDS, run_step
from pai_lab.pipelines.progress import BatchProgress
from pai_lab.pipelines.run_views import remember_declared, run_outputs
from pai_lab.pipelines.status import PipelineRunStatus as S
from pai_lab.pipelines.status import announce_run, run_status
from pai_lab.pipelines.step_plans import STOP_FILE
from pai_lab.pipelines.tables import NodeRow, RunRow
from pai_lab.store import after_commit, utcnow

if TYPE_CHECKING:
    from pai_lab.pipelines.drivers import PipelineDriver

log = logging.getLogger("pai_lab.pipelines")
POLL_SECONDS = 0.25  # steps ending and members' requests wake the driver at once; this finds steps starting


class _ShutDown(Exception):
    pass


class _Lost(Exception):
    """Another control plane took the run (this one's lease lapsed): it drives it from here on."""


class RunDriver(threading.Thread):
    def __init__(self, manager: PipelineDriver, run_id: str, graph: manifests.Graph | None = None):
        super().__init__(name=f"pai-pipeline-{run_id}", daemon=True)
        self.manager = manager
        self.store = manager.platform.store
        self.checked = graph  # the run's graph as its creation checked it (else read from its manifest)
        self.run_id = run_id
        self.wake = threading.Event()
        self.futures: dict = {}  # step -> its Dask future (the steps of a batch share one)
        self.batched: dict[str, int] = {}  # a batched step -> its place in its batch's results
        self.batches: dict[str, BatchProgress] = {}  # a batch's task key -> its progress file
        self.threads = 1
        self.looked = 0.0  # when the steps' folders were last looked at (marks of started and ended steps)
        self.pending: dict[str, dict] = {}  # node changes not yet written
        self.ending = False  # the final state is being written: a retry starts a new driver
        self.renewed = time.monotonic()  # when this driver's claim on the run was last renewed

    # -- store
    # A node's changes are kept in memory and written together, once a round (with the read of the
    # members' request), so a round that starts or ends many steps costs one transaction, not one each;
    # rows are written by their keys (an UPDATE per shape of change, run for all its rows), never read
    # back first, and the run's own row (its manifest is large) is written without being read.
    def _update_run(self, **values) -> None:
        with self.store.transaction() as s:
            self._write_nodes(s)
            s.execute(update(RunRow).where(RunRow.id == self.run_id).values(**values))
            if "status" in values:  # whoever long-polls the run hears of it once it is committed
                after_commit(s, lambda: announce_run(self.run_id, values["status"]))

    def _update_node(self, name: str, **values) -> None:
        self.nodes[name].update(values)
        self.pending.setdefault(name, {}).update(values)

    def _write_nodes(self, s) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        rows = [{"id": self.keys[name], **values} for name, values in pending.items()]
        rows.sort(key=lambda r: sorted(r))  # the same columns side by side: one executemany each
        s.execute(update(NodeRow), rows)

    def _sync(self) -> str:
        """Write the nodes' changes and read the members' request (terminate, suspend), in one transaction
        (with the renewal of this driver's claim, when it is due)."""
        with self.store.transaction() as s:
            if time.monotonic() - self.renewed >= supervision.RENEW_SECONDS:
                if not recovery.renew(s, self.run_id):
                    raise _Lost
                self.renewed = time.monotonic()
            self._write_nodes(s)
            return s.scalar(select(RunRow.request).where(RunRow.id == self.run_id)) or ""

    def _load(self) -> None:
        with self.store.transaction() as s:
            row = s.get(RunRow, self.run_id)
            self.graph = self.checked or manifests.check(row.manifest)  # a large manifest is read only here
            remember_declared(self.run_id, self.graph.manifest)
            self.arguments = dict(row.arguments)
            self.cache = row.cache
            self.sandbox = row.sandbox
            self.attempt = row.attempt
            self.work_dir = Path(row.work_dir)
            self.workspace_id = row.workspace_id
            self.user = row.created_by
            self.mine = row.driver == supervision.this_claim()  # else another server took it first
            self.refused = recovery.submitter_refusal(s, row.workspace_id, row.created_by)
            self.keys: dict[str, int] = {}  # a step's row's key, to write it without reading it
            self.nodes = {}
            for n in s.scalars(select(NodeRow).where(NodeRow.run_id == self.run_id)):
                self.keys[n.name] = n.id
                self.nodes[n.name] = {
                    "status": n.status,
                    "cached": n.cached,
                    "outputs": n.outputs or {},
                    "node_id": n.node_id,
                    "work_dir": n.work_dir,
                    "reason": n.reason,
                }

    # -- the loop
    def run(self) -> None:
        try:
            self._drive()
        except _ShutDown:
            log.info("run %s: the control plane stops; the run goes on when it starts again", self.run_id)
        except _Lost:
            log.warning("run %s: another control plane took the run over; its steps here are stopped", self.run_id)
            self._stop_steps()
        except Exception as exc:  # a bug or a lost cluster: the run fails with the reason, never hangs
            self.ending = True
            log.exception("run %s: driver failed", self.run_id)
            self._stop_steps()
            self._update_run(
                status=S.Failed, reason=f"the run's driver failed: {exc}", request="", finished_at=utcnow()
            )
        finally:
            if self.ending:
                dispatch.close_runners(getattr(self, "client", None), self.run_id)
            for batch in self.batches.values():
                batch.remove()
            self.manager.forget(self)

    def _drive(self) -> None:
        self._load()
        if not self.mine:
            return  # the run's claim names another control plane: it drives the run
        if self.refused:  # the run acts as its submitter, who may no longer run it: no step starts
            self._end_refused(self.refused)
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)  # the steps' folders and the run's marks go here
        (self.work_dir / STOP_FILE).unlink(missing_ok=True)
        self._update_run(status=S.WorkflowServiceStarting)
        from pai_lab.training.manager import get_manager

        self.client = get_manager(self.manager.platform).client()  # the training area's Dask client
        try:
            self.threads = max(1, sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001 - a cluster that does not say: no batching beyond one a step
            self.threads = 1 << 20
        self._update_run(status=S.Running, started_at=utcnow())
        suspended = False
        while True:
            if self._shutting_down():
                self._stop_steps()
                return  # the next start resumes the run
            request = self._sync()
            if request == "terminate":
                self._terminate()
                return
            if (request == "suspend") != suspended:
                suspended = request == "suspend"
                if not suspended and self._refused_now():
                    return
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
        if time.monotonic() - self.looked >= POLL_SECONDS:  # steps starting: once a poll, not every round
            self.looked = time.monotonic()
            self._look()
        done = {id(f): f for f in self.futures.values() if f.done()}
        if any(f.cancelled() for f in done.values()) and self._shutting_down():
            raise _ShutDown  # the cluster goes with the control plane: the next start resumes the run
        results = dispatch.results(self.client, list(done.values()))
        for name, future in list(self.futures.items()):
            if id(future) not in done:
                continue
            del self.futures[name]
            result = results[id(future)]
            place = self.batched.pop(name, None)
            if isinstance(result, list) and place is not None:
                result = result[place]
            if self.nodes[name]["status"] in S.RUNNING:  # not yet seen ending in its batch's progress
                self._record(name, result)  # type: ignore[arg-type]
        for key, batch in list(self.batches.items()):
            if batch.future.done() or not any(n in self.futures for n in batch.names.values()):
                batch.remove()
                del self.batches[key]

    def _look(self) -> None:
        """Steps that started or (in a batch) ended since the last look: a batch's new progress lines, and
        the start mark of a step submitted alone."""
        for batch in self.batches.values():
            for name, what, value in batch.notes():
                if name not in self.futures:
                    continue
                node = self.nodes[name]
                if what == "result" and node["status"] in S.RUNNING:
                    del self.futures[name], self.batched[name]
                    self._record(name, value)  # type: ignore[arg-type]
                elif what == "started" and node["status"] == S.ReadyToSchedule:
                    self._update_node(name, status=S.Running, started_at=utcnow())
        for name in self.futures:
            node = self.nodes[name]
            alone = name not in self.batched and node["status"] == S.ReadyToSchedule
            if alone and (Path(node["work_dir"]) / STARTED_MARK).exists():
                self._update_node(name, status=S.Running, started_at=utcnow())

    def _record(self, name: str, result: dict) -> None:
        now = utcnow()
        if self.nodes[name]["status"] == S.ReadyToSchedule and result.get("error") != "terminated":
            self._update_node(name, started_at=now)  # ended before a round saw it start
        if result.get("error") == "terminated":
            self._update_node(name, status=S.Terminated, reason="terminated", finished_at=now)
        elif result.get("error"):
            tail = "\n".join(result.get("tail") or [])
            reason = result["error"] + (f"; last lines of its log:\n{tail}" if tail else "")
            self._update_node(
                name, status=S.Failed, reason=reason, finished_at=now, outputs=result.get("outputs") or {}
            )
        else:
            was = self.nodes[name]["reason"]
            kept = was if was in (recovery.RERUN_NOTE, recovery.TAKEN_NOTE) else ""
            self._update_node(name, status=S.Succeeded, reason=kept, finished_at=now, outputs=result["outputs"])

    def _schedule(self) -> None:
        ready: list[tuple[str, dict]] = []
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
                plan = self._start(name, step)
                if plan is not None:
                    ready.append((name, plan))
        dispatch.submit(self, ready)

    def _start(self, name: str, step: manifests.StepPlan) -> dict | None:
        """Start one step: Skipped when cached, a platform step or a process of its own submitted at once;
        a FunctionOperator or built-in step's plan is returned, to be submitted with the others ready."""
        node = self.nodes[name]
        try:
            params, artifacts, keyed = step_plans.resolve(self, step, node)
        except manifests.PipelineError as exc:  # an input that cannot be had (a dataset gone): the step fails
            now = utcnow()
            reason = f"step {name!r} failed: {exc.message}"
            self._update_node(
                name, status=S.Failed, reason=reason, attempt=self.attempt, started_at=now, finished_at=now
            )
            return None
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
                return None
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
        if self.attempt > 1:  # a retry's mark is its own (a first attempt's folder has none)
            (Path(node["work_dir"]) / STARTED_MARK).unlink(missing_ok=True)
        if step.kind in WARM_KINDS and not platform_step:
            return plan
        if platform_step:  # acts on the platform as the run's submitter: in the control plane, not on Dask
            future = platform_ops.submit(self.manager.platform, plan)
        else:
            future = self.client.submit(
                run_step, json.dumps(plan), key=f"pai-pipeline-{self.run_id}-{name}-{self.attempt}", pure=False
            )
        future.add_done_callback(lambda _f: self.wake.set())
        self.futures[name] = future
        return None

    # -- ending
    def _stop_steps(self) -> None:
        if self.futures:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            (self.work_dir / STOP_FILE).write_text("stop")
            for future in {id(f): f for f in self.futures.values()}.values():
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
        self.batched.clear()
        self._update_run(status=S.Terminated, request="", finished_at=now)

    def _refused_now(self) -> bool:
        """On resume: whether the submitter may no longer run it (the run then failed, naming why)."""
        with self.store.transaction() as s:
            why = recovery.submitter_refusal(s, self.workspace_id, self.user)
        if why:
            self._end_refused(why)
        return bool(why)

    def _end_refused(self, why: str) -> None:
        self.ending = True
        self._stop_steps()
        now = utcnow()
        for name, node in self.nodes.items():
            if node["status"] in S.RUNNING:
                self._update_node(name, status=S.Terminated, reason=why, finished_at=now)
            elif node["status"] == S.Initialized:
                self._update_node(name, status=S.Skipped, reason="not run: the run failed first", finished_at=now)
        self.futures.clear()
        self.batched.clear()
        self._update_run(status=S.Failed, reason=why, request="", finished_at=now)

    def _finish(self, final: str) -> None:
        self.ending = True
        reason = ""
        if final == S.Failed:
            failed = next(n for n, v in self.nodes.items() if v["status"] == S.Failed)
            reason = f"step {failed!r} failed: {self.nodes[failed]['reason']}"
        outputs = {name: self.nodes[name]["outputs"] for name in self.graph.steps}
        made = run_outputs(self.run_id, remember_declared(self.run_id, self.graph.manifest), outputs)
        self._update_run(
            outputs=[a.model_dump() for a in made], status=final, reason=reason, request="", finished_at=utcnow()
        )
