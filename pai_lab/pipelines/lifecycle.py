"""Start-up of the pipelines area: runs left active by a previous control plane go on by themselves.

A run whose driving control plane is gone (not one a teammate's live server drives: ``recovery.py``)
that was active when the control plane stopped is resumed in the same attempt, as a workflow controller
that restarts does: its succeeded steps are kept (their outputs are in their folders), the steps that
were running run again from the start (their reason and log say ``re-run: the control plane restarted
while it ran``), and its driver starts again and carries it to its end; the run's reason says it went
on. A Suspended run stays Suspended until ``resume``. A run that cannot go on (its work folder gone, its
manifest no longer loadable) is marked Failed, naming why; ``retry`` runs it once that is fixed.
While it runs, the control plane takes over the same way the runs a teammate's server leaves behind
(killed, or of another host and no longer renewing its claim), and a run whose submitter may no longer
run it fails, naming them and why, before any step starts.
"""

from __future__ import annotations

import logging

log = logging.getLogger("pai_lab.pipelines")


def on_start(platform) -> None:
    from pai_lab.pipelines import recovery, service
    from pai_lab.pipelines.drivers import get_driver
    from pai_lab.workspaces import service as workspaces

    if service.refuse_workspace_delete_with_active_runs not in workspaces.DELETE_GUARDS:
        workspaces.DELETE_GUARDS.append(service.refuse_workspace_delete_with_active_runs)
    # another control plane over the same store (a teammate's server) keeps the runs it drives; of two
    # starting at once, the one whose claim matches first drives a run
    resumed, failed = recovery.reconcile(platform, restarted=True)
    get_driver(platform).watch()  # from here on, runs a teammate's server leaves behind are taken over
    if resumed:
        log.warning(
            "pai_lab: %d pipeline run(s) were active when the control plane stopped; they go on: %s",
            len(resumed),
            ", ".join(resumed),
        )
    if failed:
        log.warning(
            "pai_lab: %d pipeline run(s) were active when the control plane stopped and cannot go on; "
            "marked Failed: %s",
            len(failed),
            ", ".join(failed),
        )
