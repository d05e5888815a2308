"""Start-up of the training area: jobs left active by a previous control plane are reconciled.

With the embedded LocalCluster a job's ranks end with the control plane, so such a job is marked
Failed, and any process its ranks started that outlived them is ended. On an external Dask cluster
its ranks may still run: the job is marked Failed as well and its stop event is set on the
scheduler, which ends those ranks (never left running unsupervised).
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("pai_lab.training")


def _clusters_of(platform, job_ids: list[str]) -> dict[str, list[str]]:
    """The jobs by the scheduler address of their resource group ("" the default group's cluster)."""
    from sqlalchemy import select

    from pai_lab.training.tables import JobRow

    by_cluster: dict[str, list[str]] = {}
    with platform.store.transaction() as session:
        for job_id, launch in session.execute(select(JobRow.id, JobRow.launch).where(JobRow.id.in_(job_ids))):
            by_cluster.setdefault((launch or {}).get("scheduler_address", ""), []).append(job_id)
    return by_cluster


def _end_leftover_ranks(platform, job_ids: list[str], address: str = "") -> None:
    try:
        from distributed import Event

        from pai_lab.training.manager import get_manager
        from pai_lab.training.runtime import names

        client = get_manager(platform).client(address)
        for job_id in job_ids:
            Event(names(job_id)["stop"], client=client).set()
    except Exception:
        log.warning("pai_lab: could not signal the ranks of %s on the Dask cluster", job_ids, exc_info=True)


def _end_leftover_processes(platform, job_ids: list[str]) -> None:
    from pai_lab.training import isolation

    try:
        left = isolation.job_processes(job_ids=set(job_ids), output_under=str(platform.state_dir))
        if left:
            log.warning("pai_lab: ending %d process(es) left by the ranks of %s", len(left), ", ".join(job_ids))
            isolation.end_processes(left)
    except Exception:
        log.warning("pai_lab: could not look for processes left by %s", job_ids, exc_info=True)


def on_start(platform) -> None:
    from pai_lab.supervision import supervised_elsewhere
    from pai_lab.training import records, service
    from pai_lab.training.manager import get_manager
    from pai_lab.training.orphans import remove_orphan_folders
    from pai_lab.workspaces import service as workspaces

    if service.refuse_workspace_delete_with_active_jobs not in workspaces.DELETE_GUARDS:
        workspaces.DELETE_GUARDS.append(service.refuse_workspace_delete_with_active_jobs)
    # folders a crash left between making a job's folder and writing its row (after a grace period)
    threading.Thread(target=remove_orphan_folders, args=(platform,), name="pai-orphan-job-folders", daemon=True).start()
    with platform.store.transaction() as session:
        # another control plane over the same store (a teammate's server) keeps the jobs it supervises
        ended = records.reconcile_after_restart(session, keep=lambda row: supervised_elsewhere(row.work_dir))
    if ended:
        log.warning(
            "pai_lab: %d job(s) were active when the control plane stopped; marked ended: %s",
            len(ended),
            ", ".join(ended),
        )
        # A rank dies with the control plane, but what it started may not (a child in a new session,
        # a rank that was not sandboxed): anything on this machine still carrying such a job's variables.
        threading.Thread(target=_end_leftover_processes, args=(platform, ended), daemon=True).start()
        for address, job_ids in _clusters_of(platform, ended).items():
            if address or not get_manager(platform).local:  # ranks on a cluster that outlives this process
                # A synchronous Dask client must not run on the server's event loop.
                threading.Thread(target=_end_leftover_ranks, args=(platform, job_ids, address), daemon=True).start()
