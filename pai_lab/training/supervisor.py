"""A job's supervisor: one thread per job that walks it through its states.

Creating (code copied or cloned) -> Queuing (until every rank has a slot on a Dask worker and has
reported its address) -> Running (logs and metrics flow in from the ranks; the watchdog looks for
silence) -> Succeeded | Failed | Stopped. It ends every rank before it writes a final state, so a
finished job has no process left.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import threading
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from pai_lab import supervision
from pai_lab.training import job_storage, liveness, records, success
from pai_lab.training import spec as specs
from pai_lab.training.dynamic import DynamicCluster
from pai_lab.training.placement import Slot
from pai_lab.training.rank_events import RankEvents
from pai_lab.training.rank_process import STOP_GRACE_SECONDS
from pai_lab.training.runtime import names, run_rank
from pai_lab.training.schemas import JobSpec
from pai_lab.training.submit import KERAS3_HINT, is_git_url

if TYPE_CHECKING:
    from pai_lab.training.manager import TrainingManager

log = logging.getLogger("pai_lab.training")
MAX_CODE_ZIP = 64 * 2**20
POLL_SECONDS = 0.2
RECORD_CHECK_SECONDS = 1.0


def _keras_hint(tail: list[str]) -> str:
    text = "\n".join(tail)
    if "Attempt to convert a value (PerReplica" in text:
        return KERAS3_HINT
    return ""


class Supervisor(threading.Thread):
    def __init__(self, manager: TrainingManager, job_id: str):
        super().__init__(name=f"pai-job-{job_id}", daemon=True)
        self.manager = manager
        self.store = manager.platform.store
        self.job_id = job_id
        self.stop_requested = threading.Event()
        self.slots: list[Slot] = []
        self.futures: list = []
        self.last_activity = time.monotonic()
        self.exits: dict[str, tuple] = {}
        self.pod_roles: dict[str, str] = {}
        self.scheduler_address = ""  # the resource group's cluster ("" the default group's)
        self.dynamic: DynamicCluster | None = None  # enableDynamicCluster: workers that leave rejoin
        self.stepping = False  # a rank has reported a training step: from then on only steps show progress
        self.record_checked = time.monotonic()  # when the record was last read for a stop asked elsewhere
        self.watch = liveness.WorkerWatch(manager)  # the ranks' workers: one that leaves fails the job

    # -- store helpers
    def _transition(self, state: str, reason: str = "", only_from=None) -> bool:
        with self.store.transaction() as s:
            return records.transition(s, self.job_id, state, reason, only_from=only_from)

    def _pods(self, changes: dict[str, dict]) -> None:
        with self.store.transaction() as s:
            records.update_pods(s, self.job_id, changes)

    def _load(self):
        from pai_lab.training.tables import JobRow

        with self.store.transaction() as s:
            row = s.get(JobRow, self.job_id)
            return (
                JobSpec.model_validate(row.spec),
                dict(row.launch),
                row.state,
                row.created_by,
                row.workspace_id,
                row.name,
            )

    # -- phases
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a bug or a lost cluster: the job fails with the reason, never hangs
            lost = isinstance(exc, liveness.WorkerLost)
            if lost:  # those ranks went with their host: no exit will come for them
                self.exits.update({pod: (None, False, []) for pod in self.watch.lost})
                self._pods({pod: {"state": "Failed"} for pod in self.watch.lost})
            else:
                log.exception("job %s: supervisor failed", self.job_id)
            self._end_ranks()
            reason = str(exc) if lost else f"the job's supervisor failed: {exc}"
            self._transition("Failed", reason, only_from=("Creating", "Queuing", "Running"))
            self._transition("Stopped", "stopped by request", only_from=("Stopping",))
        finally:
            self.manager._release(self)

    def _stopping(self) -> bool:
        if self.stop_requested.is_set() or self.manager.closing:
            return True
        now = time.monotonic()
        if now - self.record_checked >= RECORD_CHECK_SECONDS:
            # a stop asked on another control plane over the same store (a teammate's server) shows here
            self.record_checked = now
            with self.store.transaction() as s:
                if records.state_of(s, self.job_id) == "Stopping":
                    self.stop_requested.set()
        return self.stop_requested.is_set()

    def _finish_stopped(self) -> None:
        self._end_ranks()
        reason = (
            "the control plane shut down"
            if self.manager.closing and not self.stop_requested.is_set()
            else "stopped by request"
        )
        if not self._transition("Stopped", reason, only_from=("Stopping",)):
            self._transition("Stopped", reason, only_from=("Creating", "Queuing", "Running"))
        self._pods(
            {
                p: {"state": "Stopped"}
                for p, role in self.pod_roles.items()
                if p not in self.exits or self.exits[p][0] != 0
            }
        )

    def _run(self) -> None:
        spec, launch, state, user, workspace_id, _name = self._load()
        supervision.claim(launch.get("job_dir"))  # a teammate's server that starts leaves this job to us
        self.scheduler_address = self.watch.address = launch.get("scheduler_address", "")
        ranks = specs.plan_ranks(spec)
        self.pod_roles = {r.pod(self.job_id): r.role for r in ranks}
        if state != "Creating":
            return self._finish_stopped() if state == "Stopping" else None
        launch = self._prepare_code(launch)
        shipped = launch and (launch.get("data_file") or launch.get("tables_file"))  # one folder holds both
        if launch is not None and shipped:
            from pai_lab.training import data

            launch["data_files"] = data.pack(Path(shipped).parent)  # for workers on other machines
        if launch is None or self._stopping():
            return self._finish_stopped() if launch is not None or self._stopping() else None
        # in the queue before the job shows Queuing: a job seen waiting is already in line
        self.manager.queue.join(self.job_id, spec.priority, ranks, self.scheduler_address)
        try:
            if not self._transition("Queuing", "waiting for rank slots on the Dask cluster", only_from=("Creating",)):
                return self._finish_stopped()
            if not self._place(ranks):
                return self._finish_stopped()
        finally:
            self.manager.queue.leave(self.job_id)
        client = self.manager.client(self.scheduler_address)
        # the ranks' credential for pai_lab's API: the submitter's rights in this workspace, while the job runs
        launch["job_token"] = self.manager.tokens.issue(self.job_id, user, workspace_id)
        launch["server_url"] = self.manager.settings.get("server_url", "")
        launch.update(job_storage.for_ranks(self.store, workspace_id, launch, self._embedded()))
        channel = names(self.job_id)
        from distributed import Event, Queue, Variable

        self.queue, self.stop_event = Queue(channel["events"], client=client), Event(channel["stop"], client=client)
        self.cluster_var = Variable(channel["cluster"], client=client)
        self.events = RankEvents(self.queue, f"pai-job-{self.job_id}-events")
        self.go_event = Event(channel["go"], client=client)
        for rank, slot in zip(ranks, self.slots):
            self.futures.append(
                client.submit(
                    run_rank,
                    launch,
                    rank.role,
                    rank.index,
                    slot.gpus
                    if self.manager.has_gpus(slot.address)
                    else ([] if rank.resources.gpu == 0 and self.manager.any_gpus(self.scheduler_address) else None),
                    key=f"pai-{rank.pod(self.job_id)}",
                    workers=[slot.address],
                    allow_other_workers=False,
                    pure=False,
                    resources={"GPU": rank.resources.gpu} if rank.resources.gpu else None,
                )
            )
        self._pods({r.pod(self.job_id): {"worker": s.address, "gpus": s.gpus} for r, s in zip(ranks, self.slots)})
        self.watch.placed = {r.pod(self.job_id): s.address for r, s in zip(ranks, self.slots)}
        addresses = self._rendezvous(ranks)
        if addresses is None:
            return self._finish_stopped()
        self.cluster_var.set(addresses)
        if spec.enableDynamicCluster:
            self.dynamic = DynamicCluster(self, launch, ranks, addresses)
        self.go_event.set()
        if not self._transition("Running", "", only_from=("Queuing",)):
            return self._finish_stopped()
        self.last_activity = time.monotonic()
        self._watch(spec)

    def _prepare_code(self, launch: dict) -> dict | None:
        source = launch.get("code_source")
        if not source:
            return launch
        code_dir: str = launch["code_dir"]  # set with the source
        try:
            if Path(code_dir).exists():
                shutil.rmtree(code_dir)
            if is_git_url(source):
                branch = ["--branch", launch["code_branch"]] if launch.get("code_branch") else []
                result = subprocess.run(
                    ["git", "clone", "--depth", "1", "--quiet", *branch, source, code_dir],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                if result.returncode != 0:
                    raise RuntimeError(f"git clone {source} failed: {result.stderr.strip()[-500:]}")
            else:
                # links stay links: a link to the state folder must not become a copy of a secret
                shutil.copytree(
                    source,
                    code_dir,
                    symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "__pycache__", ".ipynb_checkpoints"),
                )
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            self._transition("Failed", f"code_source: {exc}", only_from=("Creating",))
            return None
        buffer = io.BytesIO()  # shipped to workers that cannot see this folder
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, strict_timestamps=False) as archive:  # 1970 ok
            inside = Path(code_dir).resolve()
            for path in Path(code_dir).rglob("*"):
                if path.is_file() and inside in path.resolve().parents:  # no file a link points at outside
                    archive.write(path, path.relative_to(code_dir))
        launch["code_zip"] = buffer.getvalue() if buffer.tell() <= MAX_CODE_ZIP else b""
        return launch

    def _place(self, ranks) -> bool:
        reason = ""
        while not self._stopping():
            first = self.manager.queue.ahead(self.job_id, lambda r: self.manager.fits(r, self.scheduler_address))
            if first is not None:
                slots, why = None, f"waiting behind job {first[0]} (priority {first[1]}) for rank slots"
            else:
                slots, why = self.manager._allocate(self, ranks)
            if slots is not None:
                self.slots = slots
                return True
            if why != reason:
                reason = why
                self._transition("Queuing", why, only_from=("Queuing",))
            time.sleep(1.0)
        return False

    def _rendezvous(self, ranks) -> dict | None:
        pods = {r.pod(self.job_id): r for r in ranks}
        ready: dict[str, tuple[str, int]] = {}
        ran_on: dict[str, str] = {}  # pod -> the worker its task reported from
        reported = 0
        while len(ready) < len(pods):
            if self._stopping():
                return None
            for item in self._take(POLL_SECONDS):
                if item[0] == "ready":
                    ready[item[1]] = (item[2], item[3])
                    ran_on[item[1]] = item[4]
            self._check_futures()
            if len(ready) != reported:
                reported = len(ready)
                self._transition(
                    "Queuing", f"waiting for ranks to start: {reported} of {len(pods)} ready", only_from=("Queuing",)
                )
        cluster: dict[str, list[str]] = {}
        for role in specs.ROLES:
            members = sorted((r.index, pod) for pod, r in pods.items() if r.role == role)
            if members:
                cluster[role] = [f"{ready[pod][0]}:{ready[pod][1]}" for _, pod in members]
        self._pods({pod: {"host": h, "port": p, "worker": ran_on[pod]} for pod, (h, p) in ready.items()})
        return cluster

    def _embedded(self) -> bool:
        return self.manager.local and not self.scheduler_address  # the LocalCluster in this process

    def _check_futures(self) -> None:
        self.watch.check()
        for future in self.futures:
            if future.status == "error":
                raise RuntimeError(f"rank task {future.key} failed on its worker: {future.exception()!r}")
            if future.status == "cancelled":
                raise RuntimeError(f"rank task {future.key} was cancelled (its Dask worker went away?)")

    def _take(self, wait: float) -> list:
        """The ranks' events so far, waiting up to ``wait`` s for one to come: a rank's news (ready, exited)
        is acted on as it arrives (:mod:`pai_lab.training.rank_events`)."""
        return self.events.take(wait)

    def _drain(self, wait: float = 0.0) -> None:
        items = self._take(wait)
        if not items:
            return
        changes: dict[str, dict] = {}
        started = []
        with self.store.transaction() as s:
            for item in items:
                kind, pod = item[0], item[1]
                if kind == "log":
                    records.add_logs(s, self.job_id, pod, item[2])
                    if not self.stepping:  # before the first step, output shows the job is alive
                        self.last_activity = time.monotonic()
                elif kind == "metric":
                    records.add_metrics(s, self.job_id, pod, item[2])
                    self.stepping = True
                    self.last_activity = time.monotonic()
                elif kind == "started":
                    changes.setdefault(pod, {}).update(state="Running", pid=item[2])
                    started.append(pod)
                elif kind == "exit":
                    code, stopped, tail = item[2], item[3], item[4]
                    self.exits[pod] = (code, stopped, tail)
                    state = "Succeeded" if code == 0 else ("Stopped" if stopped or code is None else "Failed")
                    changes.setdefault(pod, {}).update(state=state, exit_code=code)
            if changes:
                records.update_pods(s, self.job_id, changes)
        if self.dynamic is not None:
            for pod in started:
                self.dynamic.started(pod)

    def _watch(self, spec: JobSpec) -> None:
        hang = spec.maxHungTimeBeforeGCInSeconds
        while True:
            self._drain(wait=POLL_SECONDS)
            if self._stopping():
                return self._finish_stopped()
            failed = [(p, e) for p, e in self.exits.items() if e[0] not in (0, None) and not e[1]]
            if failed and self.dynamic is not None:
                failed = self.dynamic.sort_failures(failed)
            if failed:
                self.watch.check(force=True)  # a rank that failed because its peer's host went down
                pod, (code, _stopped, tail) = failed[0]
                last = " | ".join(line for line in tail[-5:] if line.strip())
                hint = _keras_hint(tail)
                reason = f"{pod} exited with code {code}" + (f": {hint}" if hint else f"; last lines: {last}")
                return self._finish("Failed", reason)
            done, why = success.reached(self.pod_roles, self.exits)
            if done:  # with a chief, once the chief exits 0 (the others are ended below)
                return self._finish("Succeeded", why)
            if hang and time.monotonic() - self.last_activity > hang:
                what = "reported a training step" if self.stepping else "logged or reported a training step"
                return self._finish(
                    "Failed",
                    f"no rank {what} for {hang} s (-DmaxHungTimeBeforeGCInSeconds={hang}) while its "
                    "processes lived; every rank was ended",
                )
            self._check_futures()

    def _finish(self, state: str, reason: str) -> None:
        ended = success.still_running(self.pod_roles, self.exits)
        self._end_ranks()
        if state == "Succeeded":  # the ranks ended once the job had succeeded are not failures
            self._pods({p: {"state": "Succeeded"} for p in ended})
            self._register_model()
        else:
            self._pods(
                {
                    p: {"state": "Stopped"}
                    for p in self.pod_roles
                    if p in self.exits and self.exits[p][1] and self.exits[p][0] != 0
                }
            )
        if not self._transition(state, reason, only_from=("Running",)):
            self._transition("Stopped", "stopped by request", only_from=("Stopping",))

    def _end_ranks(self) -> None:
        """Signal every rank to end, wait for their tasks, then store what they sent last."""
        if not self.futures:
            return
        try:
            self.stop_event.set()
            # Each rank ends its process tree (SIGTERM, then SIGKILL after a grace period) before its
            # task returns, so the final state is written only once no process is left.
            # Polled, not awaited: waiting on a future needs the client's loop, which a shutting-down
            # control plane may be closing; a future's status is always there to read.
            deadline = time.monotonic() + STOP_GRACE_SECONDS + 60
            # a rank whose worker left has no task to wait for: its process went with its host
            waiting = [f for f in self.futures if f.key.removeprefix("pai-") not in self.watch.lost]
            for future in self.futures:
                if future.key.removeprefix("pai-") in self.watch.lost:
                    future.cancel()
            while not all(f.done() for f in waiting) and time.monotonic() < deadline:
                time.sleep(0.01)  # a rank's task returns just after its exit event came: looked at often
            if not all(f.done() for f in waiting):
                log.warning("job %s: ranks did not all end in time", self.job_id)
        except Exception:  # a lost cluster must not keep the job from ending
            log.warning("job %s: could not signal the ranks to end", self.job_id, exc_info=True)
        try:
            self.events.close()  # after every event the ended ranks put: the drain below has them all
            self._drain()
        except Exception:
            log.warning("job %s: could not store the last events", self.job_id, exc_info=True)
        left = [p for p in self.pod_roles if p not in self.exits]
        if left:
            self._pods({p: {"state": "Stopped"} for p in left})

    def _register_model(self) -> None:
        from pai_lab.training import models

        _spec, launch, _state, user, workspace_id, name = self._load()
        folder = models.find_saved_model(launch["model_dir"])
        if folder is None and "://" not in launch["checkpoint_dir"]:
            folder = models.find_saved_model(launch["checkpoint_dir"])
        if folder is None:  # on an external cluster, the chief put it on S3
            folder = job_storage.find_model(self.store, workspace_id, launch, self._embedded())
        if folder is None:
            return
        try:
            with self.store.transaction() as s:
                model = models.register_model(
                    s,
                    user,
                    workspace_id,
                    models.model_name_for(name),
                    folder,
                    job_id=self.job_id,
                    description=f"trained by job {self.job_id}",
                )
                records.set_model(s, self.job_id, f"{model.name}:{model.version}")
        except Exception:
            log.warning("job %s: its SavedModel could not be registered", self.job_id, exc_info=True)

    def cleanup(self) -> None:
        if getattr(self, "events", None) is not None:
            self.events.close()  # no reader left waiting on the queue closed below
        for obj in ("cluster_var", "queue", "go_event"):
            target = getattr(self, obj, None)
            if target is not None:
                try:
                    {"cluster_var": target.delete, "queue": target.close, "go_event": target.clear}[obj]()
                except Exception:  # noqa: BLE001, S110
                    pass
