"""Serving domain logic: the services a user holds, their versions, blue-green traffic, as eascmd
defines them.

Plain functions over a store session: queries, and the changes that need no new spec (switch version,
start/stop, delete, release). Creating and modifying a service is :mod:`pai_lab.serving.deploy`; the rows,
their views and the gateway's instructions are :mod:`pai_lab.serving.records`.
"""

from __future__ import annotations

import copy

from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict
from pai_lab.serving.processors.catalog import uses_model_entry
from pai_lab.serving.records import (
    Gateway,
    bring_in_line,
    check_role,
    class_names_of,
    released_onto,
    service_row,
    summary_of,
    version_row,
)
from pai_lab.serving.schemas import Instance, Service, ServiceDetail, ServiceVersion, local_noops
from pai_lab.serving.tables import ServiceRow, ServiceVersionRow
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize
from pai_lab.workspaces.service import DELETE_GUARDS

# --------------------------------------------------------------------------- queries


def list_services(session: Session, user: str, workspace: str, status: dict, endpoint) -> list[Service]:
    access = authorize(session, user, workspace, "service.read")
    rows = session.scalars(
        select(ServiceRow)
        .where(ServiceRow.workspace_id == access.workspace_id)
        .order_by(ServiceRow.created_at, ServiceRow.name)
    ).all()
    return [Service(**summary_of(session, r, access.workspace.name, status, endpoint)) for r in rows]


def get_service(session: Session, user: str, workspace: str, name: str, status: dict, endpoint) -> ServiceDetail:
    access = authorize(session, user, workspace, "service.read")
    row = service_row(session, access.workspace_id, name)
    version = version_row(session, row)
    config = copy.deepcopy(version.config)
    config.setdefault("metadata", {})["region"] = "local"
    return ServiceDetail(
        **summary_of(session, row, access.workspace.name, status, endpoint),
        token=row.token,
        config=config,
        model_dir=version.resolved.get("model_dir"),
        stats=(status.get(name) or {}).get("stats") or {},
        class_names=class_names_of(version),
        warnings=local_noops(version.config, uses_model_entry(version.resolved.get("processor_kind"))),
    )


def list_instances(session: Session, user: str, workspace: str, name: str, status: dict) -> list[Instance]:
    access = authorize(session, user, workspace, "service.read")
    service_row(session, access.workspace_id, name)
    return [
        Instance(**{k: v for k, v in i.items() if k in Instance.model_fields})
        for i in (status.get(name) or {}).get("instances", [])
    ]


def list_versions(session: Session, user: str, workspace: str, name: str) -> list[ServiceVersion]:
    access = authorize(session, user, workspace, "service.read")
    row = service_row(session, access.workspace_id, name)
    rows = session.scalars(
        select(ServiceVersionRow).where(ServiceVersionRow.service_id == row.id).order_by(ServiceVersionRow.version)
    ).all()
    return [
        ServiceVersion(
            version=v.version, created_at=v.created_at, current=v.version == row.current_version, config=v.config
        )
        for v in rows
    ]


# --------------------------------------------------------------------------- changes


def switch_version(session: Session, user: str, workspace: str, name: str, version: int, *, gateway: Gateway) -> None:
    access = check_role(session, user, workspace, "service.manage", name)
    row = service_row(session, access.workspace_id, name)
    version_row(session, row, version)
    row.current_version = version
    row.updated_at = utcnow()
    session.flush()
    bring_in_line(session, gateway)


def set_state(session: Session, user: str, workspace: str, name: str, state: str, *, gateway: Gateway) -> None:
    access = check_role(session, user, workspace, "service.manage", name)
    row = service_row(session, access.workspace_id, name)
    row.state = state
    row.updated_at = utcnow()
    session.flush()
    bring_in_line(session, gateway)


def delete_service(session: Session, user: str, workspace: str, name: str, *, gateway: Gateway) -> None:
    """Deleting either side of a blue-green pair sends all traffic to the survivor."""
    access = check_role(session, user, workspace, "service.manage", name)
    row = service_row(session, access.workspace_id, name)
    for child in released_onto(session, row.name):
        child.entry_token = child.entry_token or row.token  # callers of the entry keep their token
    session.delete(row)
    session.flush()
    bring_in_line(session, gateway)


def release(session: Session, user: str, workspace: str, name: str, weight: int, *, gateway: Gateway) -> dict:
    """``eascmd release <new> -w <pct>``: pct of the original endpoint's traffic goes to ``name``,
    whose own endpoint closes."""
    access = check_role(session, user, workspace, "service.manage", name)
    row = service_row(session, access.workspace_id, name)
    if row.parent is None:
        raise BadInput(
            f"release takes the new service made with `create -r` (named {name}_<8 hex>); {name!r} is not one", "name"
        )
    entry = row.entry or row.parent
    others = sum(c.weight for c in released_onto(session, entry) if c.id != row.id)
    if others + weight > 100:
        raise BadInput(f"other services already take {others}% of {entry!r}; at most {100 - others}% is left", "weight")
    parent = session.scalar(select(ServiceRow).where(ServiceRow.name == entry))
    row.entry = entry
    row.entry_token = parent.token if parent is not None else row.entry_token
    row.weight = weight
    row.endpoint_open = False
    row.updated_at = utcnow()
    session.flush()
    bring_in_line(session, gateway)
    return {"service": name, "entry": entry, "weight": weight}


def check_instance_delete(session: Session, user: str, workspace: str, name: str) -> None:
    access = check_role(session, user, workspace, "service.manage", name)
    service_row(session, access.workspace_id, name)


def service_token(session: Session, user: str, workspace: str, name: str) -> tuple[str | None, str | None]:
    """For the authenticated proxy: the entry path (None: on no endpoint) and token of a service the caller may
    read."""
    access = authorize(session, user, workspace, "service.read")
    row = service_row(session, access.workspace_id, name)
    if row.endpoint_open:
        return row.name, row.token
    return row.entry, row.entry_token


def _refuse_workspace_delete(session: Session, workspace_id: str) -> None:
    names = session.scalars(select(ServiceRow.name).where(ServiceRow.workspace_id == workspace_id)).all()
    if names:
        raise Conflict(
            f"the workspace still has services ({', '.join(names)}); delete them first with `pai eascmd delete NAME`",
            "workspace",
        )


DELETE_GUARDS.append(_refuse_workspace_delete)
