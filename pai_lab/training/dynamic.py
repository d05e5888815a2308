"""PAI-TF's ``enableDynamicCluster``: a worker rank that exits while the job runs leaves the job and
rejoins it (the same role and index, on the same Dask worker, at the same address when that port is
still free), and the job goes on; each leave and rejoin is an entry in the job's history.

The chief (the chief rank, else worker 0, which PAI-TF makes the chief) and the parameter servers hold
the job's state: when one of them fails, the job fails as without a dynamic cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pai_lab.training.runtime import run_rank

if TYPE_CHECKING:
    from pai_lab.training.supervisor import Supervisor

MAX_REJOINS = 3  # per rank: a worker that keeps failing fails the job


class DynamicCluster:
    def __init__(self, supervisor: Supervisor, launch: dict, ranks: list, cluster: dict[str, list[str]]):
        self.sup = supervisor
        self.launch = launch
        job_id = supervisor.job_id
        self.ranks = {r.pod(job_id): (r, slot) for r, slot in zip(ranks, supervisor.slots)}
        self.addresses = {r.pod(job_id): cluster[r.role][r.index] for r in ranks}
        has_chief = any(r.role == "chief" for r in ranks)
        self.chief = next((r.pod(job_id) for r in ranks if r.role == ("chief" if has_chief else "worker")), None)
        self.rejoins: dict[str, int] = {}
        self.waiting: set[str] = set()  # pods that left and have not started again

    @staticmethod
    def short(pod: str) -> str:
        return "-".join(pod.rsplit("-", 2)[-2:])

    def may_rejoin(self, pod: str) -> bool:
        rank, _slot = self.ranks.get(pod, (None, None))
        return (
            rank is not None
            and rank.role == "worker"
            and pod != self.chief
            and self.rejoins.get(pod, 0) < MAX_REJOINS
            and not self.sup._stopping()
        )

    def rejoin(self, pod: str, code) -> None:
        """The rank ``pod`` exited with ``code``: record that it left, and start it again."""
        rank, slot = self.ranks[pod]
        count = self.rejoins[pod] = self.rejoins.get(pod, 0) + 1
        self.sup.exits.pop(pod, None)
        self.waiting.add(pod)
        self.sup._transition(
            "Running",
            f"{self.short(pod)} left the job (exit code {code}); it rejoins "
            f"(enableDynamicCluster, {count} of {MAX_REJOINS})",
            only_from=("Running",),
        )
        self.sup._pods({pod: {"state": "Pending", "exit_code": None, "pid": None}})
        manager = self.sup.manager
        gpus = (
            slot.gpus
            if manager.has_gpus(slot.address)
            else ([] if rank.resources.gpu == 0 and manager.any_gpus(self.sup.scheduler_address) else None)
        )
        port = int(self.addresses[pod].rsplit(":", 1)[1])
        launch = {**self.launch, "rejoin": {"port": port, "attempt": count}}
        client = manager.client(self.sup.scheduler_address)
        self.sup.futures.append(
            client.submit(
                run_rank,
                launch,
                rank.role,
                rank.index,
                gpus,
                key=f"pai-{pod}-rejoin-{count}",
                workers=[slot.address],
                allow_other_workers=False,
                pure=False,
                resources={"GPU": rank.resources.gpu} if rank.resources.gpu else None,
            )
        )

    def started(self, pod: str) -> None:
        """A rank started its process: if it had left, it is back."""
        if pod in self.waiting:
            self.waiting.discard(pod)
            self.sup._transition("Running", f"{self.short(pod)} rejoined the job", only_from=("Running",))

    def sort_failures(self, failed: list[tuple[str, tuple]]) -> list[tuple[str, tuple]]:
        """Start again the failed ranks that may rejoin; return those that fail the job."""
        left = []
        for pod, exit_info in failed:
            if self.may_rejoin(pod):
                self.rejoin(pod, exit_info[0])
            else:
                left.append((pod, exit_info))
        return left
