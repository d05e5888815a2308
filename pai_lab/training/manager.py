"""The job manager: one Dask client, gang placement, and a supervisor thread per job.

The supervisor walks a job through its states: Creating (code copied or cloned) -> Queuing (until
every rank has a slot on a Dask worker and has reported its address) -> Running (logs and metrics
flow in from the ranks; the watchdog looks for silence) -> Succeeded | Failed | Stopped. It ends
every rank before it writes a final state, so a finished job has no process left.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from traitlets import Bool, Dict, Int, Unicode
from traitlets.config import LoggingConfigurable

from pai_lab.training import isolation, service
from pai_lab.training import spec as specs
from pai_lab.training.runtime import STOP_GRACE_SECONDS, names, run_rank
from pai_lab.training.schemas import ClusterInfo, ClusterWorker, JobSpec

log = logging.getLogger("pai_lab.training")
MAX_CODE_ZIP = 64 * 2**20
POLL_SECONDS = 0.2


@dataclass
class Slot:
    address: str
    gpus: list[int] = field(default_factory=list)


def place(ranks: list[specs.RankPlan], workers: dict[str, dict], busy: dict[str, int],
          gpus_busy: dict[str, set[int]]) -> tuple[list[Slot] | None, str]:
    """All-or-nothing placement: one slot (a worker thread) per rank, GPUs from worker resources.

    ``workers`` maps an address to ``{"nthreads": n, "gpus": g}``. Ranks spread over the workers
    with the most free slots. Returns the slots in rank order, or None and why it cannot be placed.
    """
    free = {a: w["nthreads"] - busy.get(a, 0) for a, w in workers.items()}
    free_at_start = sum(max(f, 0) for f in free.values())
    free_gpus = {a: [g for g in range(int(w.get("gpus", 0))) if g not in gpus_busy.get(a, set())]
                 for a, w in workers.items()}
    slots: list[Slot | None] = [None] * len(ranks)
    order = sorted(range(len(ranks)), key=lambda i: -ranks[i].resources.gpu)
    for i in order:
        need = ranks[i].resources.gpu
        candidates = [a for a in workers if free[a] > 0 and len(free_gpus[a]) >= need]
        if not candidates:
            total = sum(w["nthreads"] for w in workers.values())
            if need:
                have = {a: len(g) for a, g in free_gpus.items() if g}
                return None, (f"waiting for a worker with {need} free GPU(s) for {ranks[i].role}-{ranks[i].index}"
                              f" (free GPUs: {have or 'none'}); give Dask workers GPU resources "
                              "(dask worker --resources GPU=N) or lower the *_spec")
            return None, (f"waiting for {len(ranks)} rank slots; the Dask cluster has {total} worker thread(s), "
                          f"{free_at_start} free; add workers or threads, or stop "
                          "another job")
        best = max(candidates, key=lambda a: (free[a], len(free_gpus[a])))
        free[best] -= 1
        slots[i] = Slot(best, free_gpus[best][:need])
        free_gpus[best] = free_gpus[best][need:]
    return slots, ""  # type: ignore[return-value]


def _keras_hint(tail: list[str]) -> str:
    text = "\n".join(tail)
    if "Attempt to convert a value (PerReplica" in text:
        return service.KERAS3_HINT
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

    # -- store helpers
    def _transition(self, state: str, reason: str = "", only_from=None) -> bool:
        with self.store.transaction() as s:
            return service.transition(s, self.job_id, state, reason, only_from=only_from)

    def _pods(self, changes: dict[str, dict]) -> None:
        with self.store.transaction() as s:
            service.update_pods(s, self.job_id, changes)

    def _load(self):
        from pai_lab.training.tables import JobRow

        with self.store.transaction() as s:
            row = s.get(JobRow, self.job_id)
            return (JobSpec.model_validate(row.spec), dict(row.launch), row.state, row.created_by,
                    row.workspace_id, row.name)

    # -- phases
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a bug or a lost cluster: the job fails with the reason, never hangs
            log.exception("job %s: supervisor failed", self.job_id)
            self._end_ranks()
            self._transition("Failed", f"the job's supervisor failed: {exc}",
                             only_from=("Creating", "Queuing", "Running"))
            self._transition("Stopped", "stopped by request", only_from=("Stopping",))
        finally:
            self.manager._release(self)

    def _stopping(self) -> bool:
        return self.stop_requested.is_set() or self.manager.closing

    def _finish_stopped(self) -> None:
        self._end_ranks()
        reason = "the control plane shut down" if self.manager.closing and not self.stop_requested.is_set() \
            else "stopped by request"
        if not self._transition("Stopped", reason, only_from=("Stopping",)):
            self._transition("Stopped", reason, only_from=("Creating", "Queuing", "Running"))
        self._pods({p: {"state": "Stopped"} for p, role in self.pod_roles.items()
                    if p not in self.exits or self.exits[p][0] != 0})

    def _run(self) -> None:
        spec, launch, state, user, workspace_id, _name = self._load()
        ranks = specs.plan_ranks(spec)
        self.pod_roles = {r.pod(self.job_id): r.role for r in ranks}
        if state != "Creating":
            return self._finish_stopped() if state == "Stopping" else None
        launch = self._prepare_code(launch)
        if launch is not None and launch.get("data_file"):
            from pai_lab.training import data

            launch["data_files"] = data.pack(Path(launch["data_file"]).parent)  # for workers on other machines
        if launch is None or self._stopping():
            return self._finish_stopped() if launch is not None or self._stopping() else None
        if not self._transition("Queuing", "waiting for rank slots on the Dask cluster", only_from=("Creating",)):
            return self._finish_stopped()
        if not self._place(ranks):
            return self._finish_stopped()
        client = self.manager.client()
        # the ranks' credential for pai_lab's API: the submitter's rights in this workspace, while the job runs
        launch["job_token"] = self.manager.tokens.issue(self.job_id, user, workspace_id)
        launch["server_url"] = self.manager.settings.get("server_url", "")
        channel = names(self.job_id)
        from distributed import Event, Queue, Variable

        self.queue, self.stop_event = Queue(channel["events"], client=client), Event(channel["stop"], client=client)
        self.cluster_var = Variable(channel["cluster"], client=client)
        self.go_event = Event(channel["go"], client=client)
        for rank, slot in zip(ranks, self.slots):
            self.futures.append(client.submit(
                run_rank, launch, rank.role, rank.index, slot.gpus if self.manager.has_gpus(slot.address) else
                ([] if rank.resources.gpu == 0 and self.manager.any_gpus() else None),
                key=f"pai-{rank.pod(self.job_id)}", workers=[slot.address], allow_other_workers=False,
                pure=False, resources={"GPU": rank.resources.gpu} if rank.resources.gpu else None))
        self._pods({r.pod(self.job_id): {"worker": s.address, "gpus": s.gpus} for r, s in zip(ranks, self.slots)})
        addresses = self._rendezvous(ranks)
        if addresses is None:
            return self._finish_stopped()
        self.cluster_var.set(addresses)
        self.go_event.set()
        if not self._transition("Running", "", only_from=("Queuing",)):
            return self._finish_stopped()
        self.last_activity = time.monotonic()
        self._watch(spec)

    def _prepare_code(self, launch: dict) -> dict | None:
        source, code_dir = launch.get("code_source"), launch.get("code_dir")
        if not source:
            return launch
        try:
            if Path(code_dir).exists():
                shutil.rmtree(code_dir)
            if service._is_git_url(source):
                branch = ["--branch", launch["code_branch"]] if launch.get("code_branch") else []
                result = subprocess.run(["git", "clone", "--depth", "1", "--quiet", *branch, source, code_dir],
                                        capture_output=True, text=True, timeout=600, check=False)
                if result.returncode != 0:
                    raise RuntimeError(f"git clone {source} failed: {result.stderr.strip()[-500:]}")
            else:
                # links stay links: a link to the state folder must not become a copy of a secret
                shutil.copytree(source, code_dir, symlinks=True,
                                ignore=shutil.ignore_patterns(".git", "__pycache__", ".ipynb_checkpoints"))
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            self._transition("Failed", f"code_source: {exc}", only_from=("Creating",))
            return None
        buffer = io.BytesIO()  # shipped to workers that cannot see this folder
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            inside = Path(code_dir).resolve()
            for path in Path(code_dir).rglob("*"):
                if path.is_file() and inside in path.resolve().parents:  # no file a link points at outside
                    archive.write(path, path.relative_to(code_dir))
        launch["code_zip"] = buffer.getvalue() if buffer.tell() <= MAX_CODE_ZIP else b""
        return launch

    def _place(self, ranks) -> bool:
        reason = ""
        while not self._stopping():
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
        reported = 0
        while len(ready) < len(pods):
            if self._stopping():
                return None
            for item in self._take(POLL_SECONDS):
                if item[0] == "ready":
                    ready[item[1]] = (item[2], item[3])
            self._check_futures()
            if len(ready) != reported:
                reported = len(ready)
                self._transition("Queuing", f"waiting for ranks to start: {reported} of {len(pods)} ready",
                                 only_from=("Queuing",))
        cluster: dict[str, list[str]] = {}
        for role in specs.ROLES:
            members = sorted((r.index, pod) for pod, r in pods.items() if r.role == role)
            if members:
                cluster[role] = [f"{ready[pod][0]}:{ready[pod][1]}" for _, pod in members]
        self._pods({pod: {"host": h, "port": p} for pod, (h, p) in ready.items()})
        return cluster

    def _check_futures(self) -> None:
        for future in self.futures:
            if future.status == "error":
                raise RuntimeError(f"rank task {future.key} failed on its worker: {future.exception()!r}")
            if future.status == "cancelled":
                raise RuntimeError(f"rank task {future.key} was cancelled (its Dask worker went away?)")

    def _take(self, wait: float) -> list:
        """The ranks' events so far, looking again every 50 ms for up to ``wait`` s until one comes: a rank's
        news (ready, exited) is acted on as it arrives. Never a blocking get with a timeout: the
        scheduler logs each one that times out as an error, with its traceback."""
        deadline = time.monotonic() + wait
        while True:
            items = self.queue.get(batch=True)
            if items or time.monotonic() >= deadline:
                return items
            time.sleep(0.05)

    def _drain(self, wait: float = 0.0) -> None:
        items = self._take(wait)
        if not items:
            return
        changes: dict[str, dict] = {}
        with self.store.transaction() as s:
            for item in items:
                kind, pod = item[0], item[1]
                if kind == "log":
                    service.add_logs(s, self.job_id, pod, item[2])
                    self.last_activity = time.monotonic()
                elif kind == "metric":
                    service.add_metrics(s, self.job_id, pod, item[2])
                    self.last_activity = time.monotonic()
                elif kind == "started":
                    changes.setdefault(pod, {}).update(state="Running", pid=item[2])
                elif kind == "exit":
                    code, stopped, tail = item[2], item[3], item[4]
                    self.exits[pod] = (code, stopped, tail)
                    state = "Succeeded" if code == 0 else ("Stopped" if stopped or code is None else "Failed")
                    changes.setdefault(pod, {}).update(state=state, exit_code=code)
            if changes:
                service.update_pods(s, self.job_id, changes)

    def _watch(self, spec: JobSpec) -> None:
        hang = spec.maxHungTimeBeforeGCInSeconds
        trainers = [p for p, role in self.pod_roles.items() if role != "ps"]
        while True:
            self._drain(wait=POLL_SECONDS)
            if self._stopping():
                return self._finish_stopped()
            failed = [(p, e) for p, e in self.exits.items() if e[0] not in (0, None) and not e[1]]
            if failed:
                pod, (code, _stopped, tail) = failed[0]
                last = " | ".join(line for line in tail[-5:] if line.strip())
                hint = _keras_hint(tail)
                reason = f"{pod} exited with code {code}" + (f": {hint}" if hint else f"; last lines: {last}")
                return self._finish("Failed", reason)
            if all(p in self.exits and self.exits[p][0] == 0 for p in trainers):
                return self._finish("Succeeded", "")
            if hang and time.monotonic() - self.last_activity > hang:
                return self._finish("Failed", f"no rank logged or reported progress for {hang} s "
                                              "(maxHungTimeBeforeGCInSeconds); every rank was ended")
            self._check_futures()

    def _finish(self, state: str, reason: str) -> None:
        self._end_ranks()
        if state == "Succeeded":
            self._pods({p: {"state": "Succeeded"} for p, role in self.pod_roles.items() if role == "ps"})
            self._register_model()
        else:
            self._pods({p: {"state": "Stopped"} for p in self.pod_roles
                        if p in self.exits and self.exits[p][1] and self.exits[p][0] != 0})
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
            while not all(f.done() for f in self.futures) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not all(f.done() for f in self.futures):
                log.warning("job %s: ranks did not all end in time", self.job_id)
        except Exception:  # noqa: BLE001 - a lost cluster must not keep the job from ending
            log.warning("job %s: could not signal the ranks to end", self.job_id, exc_info=True)
        try:
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
        if folder is None:
            return
        try:
            with self.store.transaction() as s:
                model = models.register_model(s, user, workspace_id, models.model_name_for(name), folder,
                                              job_id=self.job_id, description=f"trained by job {self.job_id}")
                service.set_model(s, self.job_id, f"{model.name}:{model.version}")
        except Exception:
            log.warning("job %s: its SavedModel could not be registered", self.job_id, exc_info=True)

    def cleanup(self) -> None:
        for obj in ("cluster_var", "queue", "go_event"):
            target = getattr(self, obj, None)
            if target is not None:
                try:
                    {"cluster_var": target.delete, "queue": target.close, "go_event": target.clear}[obj]()
                except Exception:  # noqa: BLE001, S110
                    pass


class TrainingManager(LoggingConfigurable):
    """The training area's long-lived part: the Dask client and the jobs' supervisors.

    The server's backend for jobs (``PaiLabApp.training_manager_class`` names another one); configured as
    ``c.TrainingManager.<trait>``, or through the ``PaiLabApp.<trait>`` names users set before."""

    dask_scheduler_address = Unicode(
        "", config=True,
        help="Address of an existing Dask scheduler (tcp://host:8786). Empty: a LocalCluster started on demand.")
    n_workers = Int(2, config=True, help="Workers of the LocalCluster started when no scheduler is configured.")
    threads_per_worker = Int(0, config=True, help="Threads per LocalCluster worker; each job rank holds one while "
                             "it runs. 0: the machine's cores split between the workers.")
    memory_limit = Unicode("auto", config=True, help="Memory limit per LocalCluster worker ('auto': the machine's "
                           "memory split between the workers).")
    dask_processes = Bool(False, config=True, help="LocalCluster workers as processes instead of threads of the "
                          "control plane (a rank's work runs in its own subprocess either way).")
    dask_dashboard_address = Unicode(":0", config=True, help="Where the LocalCluster's dashboard listens.")
    dask_worker_resources = Dict(config=True, help="Resources each LocalCluster worker offers, e.g. {'GPU': 1}.")

    def __init__(self, platform, **kwargs):
        super().__init__(**kwargs)
        self.platform = platform
        self.settings = platform.settings  # the server's runtime facts (server_url), not configuration
        self._client = None
        self._cluster = None
        self._lock = threading.RLock()
        self.supervisors: dict[str, Supervisor] = {}
        self.busy: dict[str, int] = {}
        self.gpus_busy: dict[str, set[int]] = {}
        self.tokens = isolation.JobTokens()
        self.closing = False

    @property
    def local(self) -> bool:
        return not self.dask_scheduler_address

    def client(self):
        with self._lock:
            if self._client is None:
                from distributed import Client, LocalCluster

                address = self.dask_scheduler_address
                if address:
                    self._client = Client(address, timeout="30s", set_as_default=False)
                else:
                    # Worker threads in this process: a rank's work runs in its own subprocess, so the
                    # Dask side only waits and relays; no worker processes to start or to orphan.
                    n_workers, threads, memory = local_cluster_shape(self.n_workers, self.threads_per_worker,
                                                                     self.memory_limit)
                    self._cluster = LocalCluster(
                        n_workers=n_workers,
                        threads_per_worker=threads,
                        processes=self.dask_processes,
                        memory_limit=memory,
                        dashboard_address=self.dask_dashboard_address,
                        resources=dict(self.dask_worker_resources) or None,
                    )
                    self._client = Client(self._cluster, set_as_default=False)
            return self._client

    def workers(self) -> dict[str, dict]:
        info = self.client().scheduler_info(n_workers=-1) if _takes_n_workers() else self.client().scheduler_info()
        return {a: {"nthreads": w.get("nthreads", 1), "gpus": int(w.get("resources", {}).get("GPU", 0)),
                    "memory": int(w.get("memory_limit") or 0), "name": str(w.get("name", a))}
                for a, w in info.get("workers", {}).items()}

    def has_gpus(self, address: str) -> bool:
        return self._workers_cache.get(address, {}).get("gpus", 0) > 0

    def any_gpus(self) -> bool:
        return any(w.get("gpus", 0) for w in self._workers_cache.values())

    _workers_cache: dict = {}  # noqa: RUF012 - replaced, never mutated in place

    def cluster_info(self) -> ClusterInfo:
        client = self.client()
        workers = self.workers()
        return ClusterInfo(
            scheduler_address=client.scheduler.address,
            dashboard_link=getattr(client, "dashboard_link", None),
            workers=[ClusterWorker(name=w["name"], address=a, cores=w["nthreads"], memory=w["memory"],
                                   gpus=w["gpus"], busy_ranks=self.busy.get(a, 0)) for a, w in workers.items()])

    def _allocate(self, supervisor: Supervisor, ranks) -> tuple[list[Slot] | None, str]:
        workers = self.workers()
        with self._lock:
            self._workers_cache = workers
            if not workers:
                return None, "waiting for the Dask cluster to have workers"
            slots, why = place(ranks, workers, self.busy, self.gpus_busy)
            if slots is None:
                return None, why
            for slot in slots:
                self.busy[slot.address] = self.busy.get(slot.address, 0) + 1
                self.gpus_busy.setdefault(slot.address, set()).update(slot.gpus)
            return slots, ""

    def _release(self, supervisor: Supervisor) -> None:
        with self._lock:
            for slot in supervisor.slots:
                self.busy[slot.address] = max(0, self.busy.get(slot.address, 0) - 1)
                self.gpus_busy.get(slot.address, set()).difference_update(slot.gpus)
            supervisor.slots = []
            self.supervisors.pop(supervisor.job_id, None)
        self.tokens.revoke(supervisor.job_id)
        supervisor.cleanup()

    def launch(self, job_id: str) -> None:
        """Start the job's supervisor (declared by :func:`service.submit_job`, run once the job is recorded)."""
        with self._lock:
            closing = self.closing
            if not closing:
                supervisor = Supervisor(self, job_id)
                self.supervisors[job_id] = supervisor
        if closing:  # no supervisor will come for it: say so on the job rather than leave it Creating
            with self.platform.store.transaction() as s:
                service.transition(s, job_id, "Failed", "the control plane was shutting down when the job was "
                                   "submitted; submit it again", only_from=("Creating",))
            return
        supervisor.start()

    def request_stop(self, job_id: str) -> bool:
        """Tell the job's supervisor to end its ranks; False when it has none (it ended meanwhile)."""
        supervisor = self.supervisors.get(job_id)
        if supervisor is None:
            return False
        supervisor.stop_requested.set()
        return True

    def wait(self, job_id: str, timeout: float) -> None:
        supervisor = self.supervisors.get(job_id)
        if supervisor is not None:
            supervisor.join(timeout)

    def close(self) -> None:
        """End every job's ranks, then the Dask client and the LocalCluster."""
        self.closing = True
        for supervisor in list(self.supervisors.values()):
            supervisor.join(STOP_GRACE_SECONDS + 30)
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                except Exception:  # noqa: BLE001, S110
                    pass
            if self._cluster is not None:
                try:
                    self._cluster.close()
                except Exception:  # noqa: BLE001, S110
                    pass
            self._client = self._cluster = None


def local_cluster_shape(n_workers: int, threads_per_worker: int = 0,
                        memory_limit: str = "auto") -> tuple[int, int, int | str]:
    """(workers, threads per worker, memory per worker) of the embedded LocalCluster: unless set, threads
    and memory are the machine's real totals split between the workers (Dask's "auto" gives every worker
    of an in-process cluster the whole memory, and a fixed thread count claims cores that are not there)."""
    from distributed.system import MEMORY_LIMIT  # the machine's memory, or its cgroup limit

    n_workers = max(1, int(n_workers or 2))
    threads = int(threads_per_worker or 0) or max(1, _cpu_count() // n_workers)
    memory = memory_limit or "auto"
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


def _takes_n_workers() -> bool:
    import inspect

    from distributed import Client

    return "n_workers" in inspect.signature(Client.scheduler_info).parameters


def get_manager(platform) -> TrainingManager:
    return platform.manager("training", TrainingManager)
