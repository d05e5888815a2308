"""The job manager: the training area's long-lived part, with one Dask client and a supervisor thread
per job (:mod:`pai_lab.training.supervisor`); ranks are placed by :mod:`pai_lab.training.placement`."""

from __future__ import annotations

import threading

from traitlets import Bool, Dict, Int, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from pai_lab.resources.workers import scheduler_workers
from pai_lab.training import gateway, isolation, records
from pai_lab.training.placement import JobQueue, Slot, local_cluster_shape, place
from pai_lab.training.rank_process import STOP_GRACE_SECONDS
from pai_lab.training.schemas import ClusterInfo, ClusterWorker
from pai_lab.training.supervisor import Supervisor


class TrainingManager(LoggingConfigurable):
    """The training area's long-lived part: the Dask client and the jobs' supervisors.

    The server's backend for jobs (``PaiLabApp.training_manager_class`` names another one); configured as
    ``c.TrainingManager.<trait>``, or through the ``PaiLabApp.<trait>`` names users set before."""

    dask_scheduler_address = Unicode(
        "",
        config=True,
        help="Address of an existing Dask scheduler (tcp://host:8786). Empty: a LocalCluster started on demand.",
    )
    n_workers = Int(2, config=True, help="Workers of the LocalCluster started when no scheduler is configured.")
    threads_per_worker = Int(
        0,
        config=True,
        help="Threads per LocalCluster worker; each job rank holds one while "
        "it runs. 0: the machine's cores split between the workers.",
    )
    memory_limit = Unicode(
        "auto",
        config=True,
        help="Memory limit per LocalCluster worker ('auto': the machine's memory split between the workers).",
    )
    dask_processes = Bool(
        False,
        config=True,
        help="LocalCluster workers as processes instead of threads of the "
        "control plane (a rank's work runs in its own subprocess either way).",
    )
    dask_dashboard_address = Unicode(":0", config=True, help="Where the LocalCluster's dashboard listens.")
    dask_worker_resources = Dict(config=True, help="Resources each LocalCluster worker offers, e.g. {'GPU': 1}.")
    resource_groups = Dict(
        config=True,
        help="More resource groups beside `default` (the cluster above): name -> Dask scheduler address "
        "(tcp://host:8786), or name -> a Dask Gateway's settings (as dask_gateway). A workspace's Owner or "
        "Administrator chooses its group; its jobs' ranks run there.",
    )
    dask_gateway = Dict(
        config=True,
        help="The default group's cluster from a Dask Gateway, when dask_scheduler_address is empty: "
        "{'address': 'http://gateway:8000', 'proxy_address': 'gateway:8786', 'auth': 'basic'|'jupyterhub'|"
        "'kerberos', 'auth_kwargs': {...}, 'cluster_options': {...}, 'workers': 2, 'cluster_name': '', "
        "'shutdown_on_close': True}. Needs pip install 'pai_lab[gateway]'.",
    )
    resource_group_timeout = Int(
        15,
        config=True,
        help="Seconds to wait for another resource group's scheduler to answer before it is shown as "
        "ResourceUnreachable (and its jobs wait in Queuing).",
    )

    @validate("dask_gateway")
    def _check_gateway(self, proposal):
        if proposal["value"]:
            try:
                gateway.check(proposal["value"], "TrainingManager.dask_gateway")
            except ValueError as exc:
                raise TraitError(str(exc)) from None
        return proposal["value"]

    @validate("resource_groups")
    def _check_groups(self, proposal):
        for name, value in proposal["value"].items():
            if isinstance(value, dict):
                try:
                    gateway.check(value, f"TrainingManager.resource_groups[{name!r}]")
                except ValueError as exc:
                    raise TraitError(str(exc)) from None
            elif not isinstance(value, str):
                raise TraitError(
                    f"TrainingManager.resource_groups[{name!r}]: give a scheduler address (tcp://host:8786) "
                    "or a Dask Gateway's settings (a dict)"
                )
        return proposal["value"]

    def __init__(self, platform, **kwargs):
        super().__init__(**kwargs)
        self.platform = platform
        self.settings = platform.settings  # the server's runtime facts (server_url), not configuration
        self._client = None
        self._cluster = None
        self._remote: dict[str, object] = {}  # scheduler address -> Client, for the other resource groups
        self._gateways: dict[str, gateway.GatewayCluster] = {}  # group address -> the cluster a gateway gave
        self._gateway_lock = threading.Lock()
        self._lock = threading.RLock()
        self.supervisors: dict[str, Supervisor] = {}
        self.busy: dict[str, int] = {}
        self.gpus_busy: dict[str, set[int]] = {}
        self.tokens = isolation.JobTokens()
        self.queue = JobQueue()  # jobs waiting for slots, by priority
        self.closing = False

    @property
    def local(self) -> bool:
        return not self.dask_scheduler_address and not self.dask_gateway

    def group_address(self, name: str, value) -> str:
        """How jobs name a configured group's cluster: its scheduler address, or a gateway group's own key."""
        return value if isinstance(value, str) else gateway.GROUP_PREFIX + name

    def _open_gateway(self, key: str, settings: dict):
        """The client of the cluster a gateway gives for ``key`` (the default group "" or a gateway group)."""
        opened = gateway.open_cluster(gateway.check(settings, "dask_gateway"))
        self.log.info(
            "pai_lab: jobs of resource group %r run on Dask Gateway cluster %s", key or "default", opened.name
        )
        with self._lock:
            self._gateways[key] = opened
        return opened.client

    def client(self, address: str = ""):
        """The Dask client of a resource group: its scheduler ``address``, or the default group's (empty)."""
        if address:
            return self._remote_client(address)
        with self._lock:
            if self._client is None:
                import dask
                from distributed import Client, LocalCluster

                from pai_lab.training.placement import LOCAL_CLUSTER_CONFIG

                address = self.dask_scheduler_address
                if address:
                    self._client = Client(address, timeout="30s", set_as_default=False)
                elif self.dask_gateway:
                    self._client = self._open_gateway("", dict(self.dask_gateway))
                else:
                    # Worker threads in this process: a rank's work runs in its own subprocess, so the
                    # Dask side only waits and relays; no worker processes to start or to orphan.
                    n_workers, threads, memory = local_cluster_shape(
                        self.n_workers, self.threads_per_worker, self.memory_limit
                    )
                    with dask.config.set(LOCAL_CLUSTER_CONFIG):
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

    def _remote_client(self, address: str):
        with self._lock:
            client = self._remote.get(address)
            if client is not None and getattr(client, "status", "") not in ("closed", "closing"):
                return client
        if address.startswith(gateway.GROUP_PREFIX):
            settings = self.resource_groups.get(address[len(gateway.GROUP_PREFIX) :])
            if not isinstance(settings, dict):
                raise LookupError(f"resource group {address!r} is no longer configured")
            with self._gateway_lock:  # one cluster per gateway group, however many ask at once
                client = self._remote.get(address)
                if client is None or getattr(client, "status", "") in ("closed", "closing"):
                    client = self._open_gateway(address, settings)  # may take a while: the placements go on
                    with self._lock:
                        self._remote[address] = client
                return client
        from distributed import Client

        # outside the lock: may take up to the timeout
        client = Client(address, timeout=f"{self.resource_group_timeout}s", set_as_default=False)
        with self._lock:
            if address in self._remote:
                client.close()
                return self._remote[address]
            self._remote[address] = client
            return client

    def workers(self, address: str = "") -> dict[str, dict]:
        """The workers of a resource group (its scheduler ``address``; empty: the default group)."""
        info = scheduler_workers(self.client(address))
        return {
            a: {
                "nthreads": w.get("nthreads", 1),
                "gpus": int(w.get("resources", {}).get("GPU", 0)),
                "memory": int(w.get("memory_limit") or 0),
                "name": str(w.get("name", a)),
            }
            for a, w in info.items()
        }

    def has_gpus(self, address: str) -> bool:
        return self._workers_cache.get(address, {}).get("gpus", 0) > 0

    def any_gpus(self, address: str = "") -> bool:
        return any(w.get("gpus", 0) for w in self._group_workers.get(address, {}).values())

    _workers_cache: dict = {}  # noqa: RUF012 - every group's workers by address; replaced, never mutated in place
    _group_workers: dict = {}  # noqa: RUF012 - scheduler address ("" the default) -> its workers, as last seen

    def cluster_info(self, address: str = "") -> ClusterInfo:
        client = self.client(address)
        workers = self.workers(address)
        return ClusterInfo(
            scheduler_address=client.scheduler.address,
            dashboard_link=getattr(client, "dashboard_link", None),
            workers=[
                ClusterWorker(
                    name=w["name"],
                    address=a,
                    cores=w["nthreads"],
                    memory=w["memory"],
                    gpus=w["gpus"],
                    busy_ranks=self.busy.get(a, 0),
                )
                for a, w in workers.items()
            ],
        )

    def _allocate(self, supervisor: Supervisor, ranks) -> tuple[list[Slot] | None, str]:
        address = supervisor.scheduler_address
        try:
            workers = self.workers(address)
        except Exception as exc:  # another group's scheduler away: the job waits for it, as for slots
            if not address:
                raise
            why = f"waiting for the resource group's scheduler at {address} to answer ({type(exc).__name__}: {exc})"
            return None, why[:500]
        with self._lock:
            self._group_workers = {**self._group_workers, address: workers}
            self._workers_cache = {a: w for group in self._group_workers.values() for a, w in group.items()}
            if not workers:
                return None, "waiting for the Dask cluster to have workers"
            slots, why = place(ranks, workers, self.busy, self.gpus_busy)
            if slots is None:
                return None, why
            for slot in slots:
                self.busy[slot.address] = self.busy.get(slot.address, 0) + 1
                self.gpus_busy.setdefault(slot.address, set()).update(slot.gpus)
            return slots, ""

    def fits(self, ranks, address: str = "") -> bool:
        """Whether the group's cluster as last seen could hold ``ranks`` with nothing else running (unknown: yes)."""
        workers = self._group_workers.get(address, {})
        return not workers or place(ranks, workers, {}, {})[0] is not None

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
        """Start the job's supervisor (declared by :func:`submit.submit_job`, run once the job is recorded)."""
        with self._lock:
            closing = self.closing
            if not closing:
                supervisor = Supervisor(self, job_id)
                self.supervisors[job_id] = supervisor
        if closing:  # no supervisor will come for it: say so on the job rather than leave it Creating
            with self.platform.store.transaction() as s:
                records.transition(
                    s,
                    job_id,
                    "Failed",
                    "the control plane was shutting down when the job was submitted; submit it again",
                    only_from=("Creating",),
                )
            return
        supervisor.start()

    def request_stop(self, job_id: str) -> bool:
        """Tell the job's supervisor to end its ranks; False when it has none, here or on another control plane
        (it ended meanwhile)."""
        supervisor = self.supervisors.get(job_id)
        if supervisor is None:
            # another control plane over the same store (a teammate's server) may supervise it: it sees
            # the record move to Stopping and ends the ranks itself
            from pai_lab.supervision import supervised_elsewhere
            from pai_lab.training.tables import JobRow

            with self.platform.store.transaction() as s:
                row = s.get(JobRow, job_id)
                job_dir = row.work_dir if row is not None else None
            return supervised_elsewhere(job_dir)
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
            remote, self._remote = list(self._remote.values()), {}
            gateways, self._gateways = list(self._gateways.items()), {}
        for client in remote:
            try:
                client.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001, S110
                pass
        for key, opened in gateways:  # the clusters a gateway started for this server, shut down as configured
            settings = self.dask_gateway if not key else self.resource_groups.get(key[len(gateway.GROUP_PREFIX) :])
            try:
                opened.close(shutdown=bool((settings or {}).get("shutdown_on_close", True)))
            except Exception as exc:  # noqa: BLE001 - the server stops either way; say what was left
                self.log.warning("pai_lab: Dask Gateway cluster %s was not shut down: %s", opened.name, exc)


def get_manager(platform) -> TrainingManager:
    return platform.manager("training", TrainingManager)
