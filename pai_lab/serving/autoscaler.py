"""The autoscaler's loop: once a second it reads what the gateway reports for each service with a
policy (requests arrived, instances ready, their processes' CPU) and sets the instance count the
policy's rule asks for (:mod:`pai_lab.serving.autoscaling`).

It runs in the control plane, beside the serving manager, and keeps nothing of its own that a
restart would lose except its recent samples: the policy is stored with the service, and a scale
is an ordinary ``modify -Dmetadata.instance=N`` written to the store, so the gateway adds instances
that take traffic once ready and drains those it removes, as for any scale.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from pai_lab.errors import PaiError
from pai_lab.serving import autoscaling
from pai_lab.serving.tables import ServiceAutoscalerRow, ServiceRow

if TYPE_CHECKING:
    import psutil

log = logging.getLogger("pai_lab.serving")

INTERVAL = 1.0  # seconds between looks
METRIC_WINDOW = 2.0  # qps is the rate of requests arriving (answered or refused) over this many seconds


@dataclass
class _Policy:
    service_id: str
    name: str
    workspace_id: str
    state: str
    instances: int
    low: int
    high: int
    strategies: dict[str, float]
    up: float
    down: float
    user: str


class Autoscaler:
    """Applies every stored policy to the live metrics; ``live[name]`` is what it last saw and wants."""

    def __init__(self, platform, interval: float = INTERVAL, window: float = METRIC_WINDOW):
        self.platform = platform
        self.interval = interval
        self.window = window
        self.live: dict[str, dict] = {}
        self._samples: dict[str, collections.deque] = {}
        self._history: dict[str, collections.deque] = {}
        self._procs: dict[int, psutil.Process] = {}  # the instance processes, kept for cpu_percent
        self._paused: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- running

    def ensure_running(self) -> None:
        with self._lock:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="pai-autoscaler", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # the loop outlives one bad look (a store or gateway hiccup)
                log.warning("pai_lab: autoscaler look failed", exc_info=True)

    def limit(self) -> int:
        from pai_lab.serving.deploy import DEFAULT_MAX_INSTANCES

        return self.platform.settings.get("max_service_instances") or DEFAULT_MAX_INSTANCES

    # ----------------------------------------------------------------- one look

    def _policies(self) -> list[_Policy]:
        with self.platform.store.transaction() as session:
            rows = session.execute(
                select(ServiceAutoscalerRow, ServiceRow).join(
                    ServiceRow, ServiceRow.id == ServiceAutoscalerRow.service_id
                )
            ).all()
            return [
                _Policy(
                    service_id=row.id,
                    name=row.name,
                    workspace_id=row.workspace_id,
                    state=row.state,
                    instances=autoscaling.instances_of(session, row),
                    low=policy.min_instances,
                    high=policy.max_instances,
                    strategies=dict(policy.strategies),
                    up=policy.scale_up_window,
                    down=policy.scale_down_window,
                    user=policy.created_by,
                )
                for policy, row in rows
            ]

    def tick(self, now: float | None = None) -> None:
        from pai_lab.serving.manager import manager

        now = time.monotonic() if now is None else now
        policies = self._policies()
        names = {p.name for p in policies}
        for gone in set(self.live) - names:
            self._forget(gone)
        mgr = manager(self.platform)
        if not policies or not mgr.owns_gateway:  # servers sharing another's gateway leave scaling to its owner
            return
        status = mgr.status()
        alive = {i.get("pid") for live in status.values() for i in live.get("instances", [])}
        for pid in set(self._procs) - alive:  # instances that ended
            del self._procs[pid]
        for policy in policies:
            live = status.get(policy.name) or {}
            if policy.state != "Running" or not live or live.get("state") == "HotUpdate":
                self._forget(policy.name)  # stopped, or rolling out: its numbers say nothing of its load
                continue
            self._step(policy, live, now)

    def _forget(self, name: str) -> None:
        self.live.pop(name, None)
        self._samples.pop(name, None)
        self._history.pop(name, None)

    def _metrics(self, policy: _Policy, live: dict, now: float) -> dict[str, float]:
        ready = int(live.get("ready") or 0)
        samples = self._samples.setdefault(policy.name, collections.deque())
        stats = live.get("stats") or {}
        samples.append((now, float(stats.get("arrivals", stats.get("requests", 0)))))
        while samples and samples[0][0] < now - self.window:
            samples.popleft()
        metrics: dict[str, float] = {}
        if ready and len(samples) >= 2 and samples[-1][0] > samples[0][0]:
            (t0, r0), (t1, r1) = samples[0], samples[-1]
            metrics["qps"] = max(0.0, r1 - r0) / (t1 - t0) / ready
        if ready and "cpu" in policy.strategies:
            # a worker-hosted instance's pid is on its worker, not here: its CPU is not seen (qps still is)
            local = [i for i in live.get("instances", []) if _serving(i) and not i.get("worker")]
            cpu = [c for c in (self._cpu(i.get("pid")) for i in local) if c is not None]
            if cpu:
                metrics["cpu"] = sum(cpu) / len(cpu)
        return metrics

    def _cpu(self, pid: int | None) -> float | None:
        """Percent of one core the instance process used since the last look (None at the first)."""
        import psutil

        if not pid:
            return None
        try:
            proc = self._procs.get(pid)
            if proc is None:
                self._procs[pid] = proc = psutil.Process(pid)
                proc.cpu_percent(None)
                return None
            return float(proc.cpu_percent(None))
        except psutil.Error:
            self._procs.pop(pid, None)
            return None

    def _step(self, policy: _Policy, live: dict, now: float) -> None:
        ready = int(live.get("ready") or 0)
        metrics = self._metrics(policy, live, now)
        wanted, why = autoscaling.recommend(policy.instances, ready, metrics, policy.strategies)
        wanted = autoscaling.bounded(wanted, policy.low, min(policy.high, self.limit()))
        if policy.instances < policy.low or policy.instances > policy.high:
            why = f"the policy keeps {policy.low} to {policy.high} instances"
        history = self._history.setdefault(policy.name, collections.deque())
        history.append((now, wanted))
        while history and history[0][0] < now - max(policy.up, policy.down):
            history.popleft()
        target = autoscaling.stabilized(policy.instances, history, now, policy.up, policy.down)
        self.live[policy.name] = {"target": target, "metrics": {k: round(v, 2) for k, v in metrics.items()}}
        if target != policy.instances:
            self._scale(policy, target, why)

    def _scale(self, policy: _Policy, target: int, why: str) -> None:
        from pai_lab.serving.deploy import modify_service
        from pai_lab.serving.manager import manager

        mgr = manager(self.platform)
        kind = "ScaleUp" if target > policy.instances else "ScaleDown"
        try:
            with self.platform.store.transaction() as session:
                modify_service(
                    session,
                    policy.user,
                    policy.workspace_id,
                    policy.name,
                    {"metadata": {"instance": target}},
                    mgr.state_dir / "models",
                    gateway=mgr,
                    max_instances=self.limit(),
                )
                row = session.get(ServiceRow, policy.service_id)
                assert row is not None  # modify_service found it
                autoscaling.record_event(
                    session, row, kind, f"{why}: {policy.instances} -> {target} instances", policy.instances, target
                )
            self._paused.discard(policy.name)
            log.info("pai_lab: autoscaler: %s %s -> %s (%s)", policy.name, policy.instances, target, why)
        except PaiError as exc:  # the member who set the policy may no longer scale it
            if policy.name in self._paused:
                return
            self._paused.add(policy.name)
            with self.platform.store.transaction() as session:
                row = session.get(ServiceRow, policy.service_id)
                if row is not None:
                    autoscaling.record_event(
                        session,
                        row,
                        "AutoscalerPaused",
                        f"could not scale to {target} as {policy.user}: {exc.message}; set the policy again "
                        "as a member who may manage the service",
                    )


def _serving(instance: dict) -> bool:
    return instance.get("status") != "Terminating" and str(instance.get("ready", "")).startswith("[1/")


def autoscaler(platform) -> Autoscaler:
    return platform.manager("serving.autoscaler", Autoscaler)
