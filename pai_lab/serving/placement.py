"""Where a service's instances run: the serving gateway's own processes (the default), or the
workers of its workspace's resource group when that group is a Dask cluster of its own.

The choice is the workspace's (its Owner or an Administrator picks the group, as for jobs:
:mod:`pai_lab.resources.service`); the gateway reads it from each service's ``placement``."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session


def placement_of(session: Session, platform, workspace_id: str) -> dict | None:
    """``{"group", "scheduler"}`` of the workspace's resource group, or None: instances run in the gateway."""
    from pai_lab.resources.service import group_of

    group, address = group_of(session, platform, workspace_id)
    if not address.startswith(("tcp://", "tls://", "ucx://", "ws://", "wss://")):
        return None  # the default group, or a Dask Gateway's cluster (its credentials stay with the jobs' manager)
    return {"group": group, "scheduler": address}


def placements(session: Session, platform) -> Callable[[str], dict | None]:
    """workspace id -> its services' placement, each workspace asked once."""
    seen: dict[str, dict | None] = {}

    def of(workspace_id: str) -> dict | None:
        if workspace_id not in seen:
            seen[workspace_id] = placement_of(session, platform, workspace_id)
        return seen[workspace_id]

    return of


def follow_group(session: Session, platform, workspace_id: str) -> None:
    """The workspace chose another resource group: once that commits, its services' instances move
    there (a rolling update: the old instances serve until the new ones are ready)."""
    from sqlalchemy import select

    from pai_lab.serving.manager import manager
    from pai_lab.serving.records import bring_in_line
    from pai_lab.serving.tables import ServiceRow

    if session.scalar(select(ServiceRow.id).where(ServiceRow.workspace_id == workspace_id).limit(1)) is not None:
        bring_in_line(session, manager(platform))
