"""Start-up of the training area: jobs left active by a previous control plane are reconciled."""

from __future__ import annotations

import logging

log = logging.getLogger("pai_lab.training")


def on_start(platform) -> None:
    from pai_lab.training import service
    from pai_lab.workspaces import service as workspaces

    if service.refuse_workspace_delete_with_active_jobs not in workspaces.DELETE_GUARDS:
        workspaces.DELETE_GUARDS.append(service.refuse_workspace_delete_with_active_jobs)
    with platform.store.transaction() as session:
        ended = service.reconcile_after_restart(session)
    if ended:
        log.warning("pai_lab: %d job(s) were active when the control plane stopped; marked ended: %s",
                    len(ended), ", ".join(ended))
