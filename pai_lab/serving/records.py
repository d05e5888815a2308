"""A service's rows: finding them, how they read (a :class:`Service`, its traffic split), and the
gateway's instructions drawn from them.

Each change (:mod:`pai_lab.serving.deploy`, :mod:`pai_lab.serving.service`) declares with
:func:`bring_in_line` that the gateway is brought in line once it commits: :func:`desired_state` turns the
store into the gateway's instructions, and ``gateway.sync()`` (the serving manager, passed in as ``gateway``)
pushes them. Runtime facts (instances, readiness) come from the gateway's status, passed in as ``status``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pai_lab.errors import NotFound
from pai_lab.serving.processors import read_class_names
from pai_lab.serving.schemas import TEST_PREFIX, Metadata
from pai_lab.serving.tables import ServiceRow, ServiceVersionRow
from pai_lab.store import after_commit
from pai_lab.workspaces import authorize

# --------------------------------------------------------------------------- lookups and views


def service_row(session: Session, workspace_id: str, name: str) -> ServiceRow:
    row = session.scalar(select(ServiceRow).where(ServiceRow.workspace_id == workspace_id, ServiceRow.name == name))
    if row is None:
        raise NotFound(f"no service named {name!r} in this workspace; `pai eascmd ls` lists them", "name")
    return row


def version_row(session: Session, row: ServiceRow, version: int | None = None) -> ServiceVersionRow:
    found = session.get(ServiceVersionRow, (row.id, version or row.current_version))
    if found is None:
        raise NotFound(
            f"service {row.name!r} has no version {version}; versions 1..{row.latest_version} exist", "version"
        )
    return found


def name_taken(session: Session, name: str) -> bool:
    return (
        session.scalar(select(ServiceRow.id).where(or_(ServiceRow.name == name, ServiceRow.entry == name))) is not None
    )


def released_onto(session: Session, entry: str) -> list[ServiceRow]:
    return list(session.scalars(select(ServiceRow).where(ServiceRow.entry == entry)).all())


def traffic_of(session: Session, row: ServiceRow) -> dict[str, int] | None:
    """The split on the entry endpoint this service owns, or null when it owns none."""
    if row.endpoint_open:
        children = [c for c in released_onto(session, row.name) if c.id != row.id]
        if not children:
            return None
        return normalise(
            {row.name: max(0, 100 - sum(c.weight for c in children)), **{c.name: c.weight for c in children}}
        )
    if row.entry and session.scalar(select(ServiceRow.id).where(ServiceRow.name == row.entry)) is None:
        return normalise({c.name: c.weight for c in released_onto(session, row.entry)})
    return None


def normalise(shares: dict[str, int]) -> dict[str, int]:
    total = sum(shares.values())
    if total <= 0:
        return {k: 100 // max(1, len(shares)) for k in shares}
    if total == 100:
        return shares
    out = {k: round(v * 100 / total) for k, v in shares.items()}
    first = next(iter(out))
    out[first] += 100 - sum(out.values())
    return out


def summary_of(session: Session, row: ServiceRow, workspace: str, status: dict, endpoint) -> dict:
    live = status.get(row.name) or {}
    if row.state == "Stopped":
        state = live.get("state") if live.get("state") in ("Stopping", "Stopped") else "Stopped"
    else:
        state = live.get("state") or "Waiting"
    path = f"/api/predict/{row.name if row.endpoint_open else row.entry}"
    return dict(
        name=row.name,
        workspace=workspace,
        state=state,
        instances_ready=live.get("ready", 0),
        instances_total=live.get("total", 0),
        endpoint=endpoint(f"/api/predict/{row.name}") if row.endpoint_open else None,
        service_path=path,
        traffic=traffic_of(session, row),
        weight=row.weight,
        parent=row.parent,
        test=row.test,
        current_version=row.current_version,
        latest_version=row.latest_version,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        message=live.get("message") or row.message,
        fatal=bool(live.get("fatal")),
    )


def class_names_of(version: ServiceVersionRow) -> list[str] | None:
    resolved = version.resolved or {}
    if resolved.get("processor_kind") not in ("tensorflow", "easyvision"):
        return None
    if "class_names" in resolved:
        return resolved["class_names"]
    return read_class_names(resolved.get("model_dir"))  # a version resolved before class lists were kept


def check_role(session: Session, user: str, workspace: str, action: str, name: str):
    return authorize(session, user, workspace, action, test_service=name.startswith(TEST_PREFIX))


class Gateway(Protocol):
    """What runs the services (the serving manager): told to run what the store says."""

    def sync(self) -> None: ...

    def check_sandbox(self, session: Session) -> None: ...


def bring_in_line(session: Session, gateway: Gateway) -> None:
    # after the commit, so the gateway reads the change, and never for a write that rolled back
    after_commit(session, gateway.sync)


# --------------------------------------------------------------------------- the gateway's instructions


def revision_of(row: ServiceRow, version: ServiceVersionRow) -> str:
    config = copy.deepcopy(version.config)
    config.get("metadata", {}).pop("instance", None)
    text = json.dumps([row.id, version.version, config, version.resolved], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def desired_state(session: Session, placement: Callable[[str], dict | None] | None = None) -> dict:
    """Every service on the server, as the gateway should run it, and the entry routes. ``placement``:
    workspace id -> the resource group whose Dask workers host its instances (None: the gateway's own)."""
    services: list[dict] = []
    routes: dict[str, dict] = {}
    rows = session.scalars(select(ServiceRow).order_by(ServiceRow.created_at)).all()
    by_name = {r.name: r for r in rows}
    for row in rows:
        version = session.get(ServiceVersionRow, (row.id, row.current_version))
        assert version is not None  # a service always has its current version
        meta = Metadata.model_validate(version.config["metadata"])
        rpc = meta.rpc.model_dump()
        where = placement(row.workspace_id) if placement is not None else None
        revision = revision_of(row, version)
        if where:  # moving to another group's workers rolls the instances over like a new version
            revision = hashlib.sha1(f"{revision}|{where['scheduler']}".encode()).hexdigest()
        services.append(
            {
                "name": row.name,
                "state": row.state,
                "instance": meta.instance,
                "workers": meta.concurrency,
                "rpc": rpc,
                "cpu": meta.cpu,
                "memory": meta.memory,
                "gpu": meta.gpu,
                "version": version.version,
                "revision": revision,
                "placement": where,
                "processor": {k: v for k, v in version.resolved.items() if k not in ("warm_up", "revision_bump")},
                "warm_up": version.resolved.get("warm_up") or [],
            }
        )
        if row.endpoint_open:
            routes.setdefault(row.name, {"token": row.token, "targets": {}})
            routes[row.name]["token"] = row.token
        if row.entry:
            route = routes.setdefault(row.entry, {"token": row.entry_token, "targets": {}})
            if row.entry not in by_name:
                route["token"] = row.entry_token
            route["targets"][row.name] = row.weight
    for entry, route in routes.items():
        taken = sum(w for n, w in route["targets"].items())
        if entry in by_name and by_name[entry].endpoint_open:
            route["targets"][entry] = max(0, 100 - taken)
        route["targets"] = normalise(route["targets"]) if route["targets"] else {}
    return {"services": services, "routes": routes}
