"""Start-up of the pipelines area: runs left active by a previous control plane are marked Failed
(their drivers and steps ended with it), with the reason; `retry` runs what did not finish."""

from __future__ import annotations

import logging

log = logging.getLogger("pai_lab.pipelines")


def on_start(platform) -> None:
    from pai_lab.pipelines import service
    from pai_lab.supervision import supervised_elsewhere
    from pai_lab.workspaces import service as workspaces

    if service.refuse_workspace_delete_with_active_runs not in workspaces.DELETE_GUARDS:
        workspaces.DELETE_GUARDS.append(service.refuse_workspace_delete_with_active_runs)
    with platform.store.transaction() as session:
        # another control plane over the same store (a teammate's server) keeps the runs it drives
        ended = service.reconcile_after_restart(session, keep=lambda row: supervised_elsewhere(row.work_dir))
    if ended:
        log.warning(
            "pai_lab: %d pipeline run(s) were active when the control plane stopped; marked Failed: %s",
            len(ended),
            ", ".join(ended),
        )
