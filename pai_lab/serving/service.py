"""Serving domain logic: services, versions, blue-green traffic, as eascmd defines them.

Plain functions over a store session. They record what should run, and each change declares
(:func:`pai_lab.store.after_commit`) that the gateway is brought in line once it commits:
:func:`desired_state` turns the store into the gateway's instructions, and ``gateway.sync()`` (the
serving manager, passed in as ``gateway``) pushes them. Where the model and processor are on this
machine is :mod:`pai_lab.serving.artifacts`.
Runtime facts (instances, readiness) come from the gateway's status, passed in as ``status``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, NotFound
from pai_lab.serving.artifacts import resolve
from pai_lab.serving.processors import read_class_names
from pai_lab.serving.processors.catalog import uses_model_entry
from pai_lab.serving.schemas import (
    TEST_PREFIX,
    Instance,
    Metadata,
    Service,
    ServiceDetail,
    ServiceSpec,
    ServiceVersion,
    local_noops,
)
from pai_lab.serving.tables import ServiceRow, ServiceVersionRow
from pai_lab.store import after_commit, new_id, utcnow
from pai_lab.workspaces import authorize
from pai_lab.workspaces.service import DELETE_GUARDS

MODEL_KEYS = {
    "model_path",
    "processor",
    "processor_path",
    "processor_entry",
    "processor_mainclass",
    "processor_type",
    "model_entry",
    "model_config",
    "oss_endpoint",
}


def new_token() -> str:
    """As EAS makes them: base64 of 40 lowercase hex characters (56 characters)."""
    return base64.b64encode(secrets.token_hex(20).encode()).decode()


# --------------------------------------------------------------------------- validation


def parse_spec(data: Any) -> ServiceSpec:
    """The service JSON, validated; errors name the key (unknown keys are refused by name)."""
    if not isinstance(data, dict):
        raise BadInput("the service JSON must be an object with name, model_path, processor and metadata", "spec")
    try:
        return ServiceSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        if err.get("type") == "extra_forbidden":
            raise BadInput(
                f"unknown key {loc!r} in the service JSON; check its spelling (keys: name, token, "
                "generate_token, model_path, oss_endpoint, model_entry, model_config, processor, "
                "processor_path, processor_entry, processor_mainclass, processor_type, "
                "warm_up_data_path, metadata)",
                loc,
            ) from None
        if err.get("type") == "missing":
            raise BadInput(f"{loc} is required in the service JSON", loc) from None
        raise BadInput(f"{loc}: {err.get('msg')}", loc) from None


# Instances one service may ask for unless the server sets PaiLabApp.max_service_instances.
DEFAULT_MAX_INSTANCES = 64


def check_instances(spec: ServiceSpec, limit: int | None) -> None:
    """A service asks for at most ``limit`` instances: refused before anything is resolved or started."""
    limit = limit or DEFAULT_MAX_INSTANCES
    if spec.metadata.instance > limit:
        raise BadInput(
            f"metadata.instance={spec.metadata.instance} is more than this server allows ({limit} "
            "instances per service; an operator raises it with PaiLabApp.max_service_instances)",
            "metadata.instance",
        )


# --------------------------------------------------------------------------- queries


def _row(session: Session, workspace_id: str, name: str) -> ServiceRow:
    row = session.scalar(select(ServiceRow).where(ServiceRow.workspace_id == workspace_id, ServiceRow.name == name))
    if row is None:
        raise NotFound(f"no service named {name!r} in this workspace; `pai eascmd ls` lists them", "name")
    return row


def _version(session: Session, row: ServiceRow, version: int | None = None) -> ServiceVersionRow:
    found = session.get(ServiceVersionRow, (row.id, version or row.current_version))
    if found is None:
        raise NotFound(
            f"service {row.name!r} has no version {version}; versions 1..{row.latest_version} exist", "version"
        )
    return found


def _name_taken(session: Session, name: str) -> bool:
    return (
        session.scalar(select(ServiceRow.id).where(or_(ServiceRow.name == name, ServiceRow.entry == name))) is not None
    )


def _released_onto(session: Session, entry: str) -> list[ServiceRow]:
    return list(session.scalars(select(ServiceRow).where(ServiceRow.entry == entry)).all())


def traffic_of(session: Session, row: ServiceRow) -> dict[str, int] | None:
    """The split on the entry endpoint this service owns, or null when it owns none."""
    if row.endpoint_open:
        children = [c for c in _released_onto(session, row.name) if c.id != row.id]
        if not children:
            return None
        return _normalise(
            {row.name: max(0, 100 - sum(c.weight for c in children)), **{c.name: c.weight for c in children}}
        )
    if row.entry and session.scalar(select(ServiceRow.id).where(ServiceRow.name == row.entry)) is None:
        return _normalise({c.name: c.weight for c in _released_onto(session, row.entry)})
    return None


def _normalise(shares: dict[str, int]) -> dict[str, int]:
    total = sum(shares.values())
    if total <= 0:
        return {k: 100 // max(1, len(shares)) for k in shares}
    if total == 100:
        return shares
    out = {k: round(v * 100 / total) for k, v in shares.items()}
    first = next(iter(out))
    out[first] += 100 - sum(out.values())
    return out


def _summary(session: Session, row: ServiceRow, workspace: str, status: dict, endpoint) -> dict:
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


def list_services(session: Session, user: str, workspace: str, status: dict, endpoint) -> list[Service]:
    access = authorize(session, user, workspace, "service.read")
    rows = session.scalars(
        select(ServiceRow)
        .where(ServiceRow.workspace_id == access.workspace_id)
        .order_by(ServiceRow.created_at, ServiceRow.name)
    ).all()
    return [Service(**_summary(session, r, access.workspace.name, status, endpoint)) for r in rows]


def get_service(session: Session, user: str, workspace: str, name: str, status: dict, endpoint) -> ServiceDetail:
    access = authorize(session, user, workspace, "service.read")
    row = _row(session, access.workspace_id, name)
    version = _version(session, row)
    config = copy.deepcopy(version.config)
    config.setdefault("metadata", {})["region"] = "local"
    return ServiceDetail(
        **_summary(session, row, access.workspace.name, status, endpoint),
        token=row.token,
        config=config,
        model_dir=version.resolved.get("model_dir"),
        stats=(status.get(name) or {}).get("stats") or {},
        class_names=_class_names(version),
        warnings=local_noops(version.config, uses_model_entry(version.resolved.get("processor_kind"))),
    )


def _class_names(version: ServiceVersionRow) -> list[str] | None:
    resolved = version.resolved or {}
    if resolved.get("processor_kind") not in ("tensorflow", "easyvision"):
        return None
    if "class_names" in resolved:
        return resolved["class_names"]
    return read_class_names(resolved.get("model_dir"))  # a version resolved before class lists were kept


def list_instances(session: Session, user: str, workspace: str, name: str, status: dict) -> list[Instance]:
    access = authorize(session, user, workspace, "service.read")
    _row(session, access.workspace_id, name)
    return [
        Instance(**{k: v for k, v in i.items() if k in Instance.model_fields})
        for i in (status.get(name) or {}).get("instances", [])
    ]


def list_versions(session: Session, user: str, workspace: str, name: str) -> list[ServiceVersion]:
    access = authorize(session, user, workspace, "service.read")
    row = _row(session, access.workspace_id, name)
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


def _check_role(session: Session, user: str, workspace: str, action: str, name: str):
    return authorize(session, user, workspace, action, test_service=name.startswith(TEST_PREFIX))


class Gateway(Protocol):
    """What runs the services (the serving manager): told to run what the store says."""

    def sync(self) -> None: ...


def _bring_in_line(session: Session, gateway: Gateway) -> None:
    # after the commit, so the gateway reads the change, and never for a write that rolled back
    after_commit(session, gateway.sync)


def create_service(
    session: Session,
    user: str,
    workspace: str,
    data: dict,
    cache: Path,
    *,
    gateway: Gateway,
    relate: bool = False,
    containment=None,
    max_instances: int | None = None,
) -> str:
    """``eascmd create`` (``relate``: ``create -r``, blue-green). Returns the new service's name."""
    spec = parse_spec(data)
    access = _check_role(session, user, workspace, "service.deploy", spec.name)
    check_instances(spec, max_instances)
    parent = None
    name = spec.name
    if relate:
        parent = session.scalar(
            select(ServiceRow).where(ServiceRow.workspace_id == access.workspace_id, ServiceRow.name == spec.name)
        )
        if parent is None:
            raise BadInput(
                f"create -r makes a blue-green partner of an existing service, and there is no service "
                f"named {spec.name!r}; create it without -r first",
                "name",
            )
        while _name_taken(session, name):
            name = f"{spec.name}_{secrets.token_hex(4)}"
    elif _name_taken(session, name):
        raise Conflict(
            f"a service named {name!r} already exists (names are unique on this server because they are "
            "endpoint paths); pick another name, or use `create -r` for a blue-green release",
            "name",
        )
    resolved = resolve(session, user, access.workspace.name, spec, cache, containment)
    token = spec.token or (None if spec.generate_token is False else new_token())
    now = utcnow()
    row = ServiceRow(
        id=new_id("svc"),
        workspace_id=access.workspace_id,
        name=name,
        state="Running",
        token=token,
        test=name.startswith(TEST_PREFIX),
        parent=parent.name if parent else None,
        endpoint_open=True,
        current_version=1,
        latest_version=1,
        created_by=user,
        created_at=now,
        updated_at=now,
        message="",
    )
    session.add(row)
    session.flush()
    config = spec.dump()
    config["name"] = name
    session.add(
        ServiceVersionRow(
            service_id=row.id, version=1, config=config, resolved=resolved, created_by=user, created_at=now
        )
    )
    session.flush()
    _bring_in_line(session, gateway)
    return name


def _deep_merge(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def modify_service(
    session: Session,
    user: str,
    workspace: str,
    name: str,
    change: dict,
    cache: Path,
    *,
    gateway: Gateway,
    containment=None,
    max_instances: int | None = None,
) -> dict:
    """``eascmd modify``: ``{"metadata": {"instance": N}}`` alone scales in place; a change with
    model and processor keys adds a version (rolling update to it); anything else updates the
    current version (rolling update). Returns what happened."""
    access = _check_role(session, user, workspace, "service.manage", name)
    row = _row(session, access.workspace_id, name)
    if not isinstance(change, dict) or not change:
        raise BadInput("nothing to change: give keys of the service JSON (for example metadata.instance)", "spec")
    if "name" in change and change["name"] != name:
        raise BadInput("a service cannot be renamed; leave out `name` or use the service's own name", "name")
    if "metadata" in change:
        flat = {k: v for k, v in change["metadata"].items()} if isinstance(change["metadata"], dict) else None
        if flat is None:
            raise BadInput("metadata must be an object", "metadata")
    current = _version(session, row)
    spec = parse_spec(_deep_merge(current.config, change))
    check_instances(spec, max_instances)
    meta_change = change.get("metadata") or {}
    only_scale = set(change) == {"metadata"} and set(meta_change) == {"instance"}
    if "token" in change or "generate_token" in change:
        row.token = spec.token or (None if spec.generate_token is False else (row.token or new_token()))
    if only_scale:
        current.config = spec.dump()
        kind = "scaled"
    else:
        resolved = (
            resolve(session, user, access.workspace.name, spec, cache, containment)
            if (MODEL_KEYS & set(change) or "warm_up_data_path" in change)
            else current.resolved
        )
        new_version = bool({"model_path", "processor", "processor_path", "processor_entry"} & set(change))
        if new_version:
            row.latest_version += 1
            session.add(
                ServiceVersionRow(
                    service_id=row.id,
                    version=row.latest_version,
                    config=spec.dump(),
                    resolved=resolved,
                    created_by=user,
                    created_at=utcnow(),
                )
            )
            row.current_version = row.latest_version
            kind = "new version"
        else:
            current.config = spec.dump()
            current.resolved = dict(resolved, revision_bump=secrets.token_hex(4))
            kind = "updated"
    row.updated_at = utcnow()
    session.flush()
    _bring_in_line(session, gateway)
    return {
        "service": name,
        "change": kind,
        "current_version": row.current_version,
        "latest_version": row.latest_version,
    }


def switch_version(session: Session, user: str, workspace: str, name: str, version: int, *, gateway: Gateway) -> None:
    access = _check_role(session, user, workspace, "service.manage", name)
    row = _row(session, access.workspace_id, name)
    _version(session, row, version)
    row.current_version = version
    row.updated_at = utcnow()
    session.flush()
    _bring_in_line(session, gateway)


def set_state(session: Session, user: str, workspace: str, name: str, state: str, *, gateway: Gateway) -> None:
    access = _check_role(session, user, workspace, "service.manage", name)
    row = _row(session, access.workspace_id, name)
    row.state = state
    row.updated_at = utcnow()
    session.flush()
    _bring_in_line(session, gateway)


def delete_service(session: Session, user: str, workspace: str, name: str, *, gateway: Gateway) -> None:
    """Deleting either side of a blue-green pair sends all traffic to the survivor."""
    access = _check_role(session, user, workspace, "service.manage", name)
    row = _row(session, access.workspace_id, name)
    for child in _released_onto(session, row.name):
        child.entry_token = child.entry_token or row.token  # callers of the entry keep their token
    session.delete(row)
    session.flush()
    _bring_in_line(session, gateway)


def release(session: Session, user: str, workspace: str, name: str, weight: int, *, gateway: Gateway) -> dict:
    """``eascmd release <new> -w <pct>``: pct of the original endpoint's traffic goes to ``name``,
    whose own endpoint closes."""
    access = _check_role(session, user, workspace, "service.manage", name)
    row = _row(session, access.workspace_id, name)
    if row.parent is None:
        raise BadInput(
            f"release takes the new service made with `create -r` (named {name}_<8 hex>); {name!r} is not one", "name"
        )
    entry = row.entry or row.parent
    others = sum(c.weight for c in _released_onto(session, entry) if c.id != row.id)
    if others + weight > 100:
        raise BadInput(f"other services already take {others}% of {entry!r}; at most {100 - others}% is left", "weight")
    parent = session.scalar(select(ServiceRow).where(ServiceRow.name == entry))
    row.entry = entry
    row.entry_token = parent.token if parent is not None else row.entry_token
    row.weight = weight
    row.endpoint_open = False
    row.updated_at = utcnow()
    session.flush()
    _bring_in_line(session, gateway)
    return {"service": name, "entry": entry, "weight": weight}


def check_instance_delete(session: Session, user: str, workspace: str, name: str) -> None:
    access = _check_role(session, user, workspace, "service.manage", name)
    _row(session, access.workspace_id, name)


def service_token(session: Session, user: str, workspace: str, name: str) -> tuple[str | None, str | None]:
    """For the authenticated proxy: the entry path (None: on no endpoint) and token of a service the caller may
    read."""
    access = authorize(session, user, workspace, "service.read")
    row = _row(session, access.workspace_id, name)
    if row.endpoint_open:
        return row.name, row.token
    return row.entry, row.entry_token


# --------------------------------------------------------------------------- the gateway's instructions


def _revision(row: ServiceRow, version: ServiceVersionRow) -> str:
    config = copy.deepcopy(version.config)
    config.get("metadata", {}).pop("instance", None)
    text = json.dumps([row.id, version.version, config, version.resolved], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def desired_state(session: Session) -> dict:
    """Every service on the server, as the gateway should run it, and the entry routes."""
    services: list[dict] = []
    routes: dict[str, dict] = {}
    rows = session.scalars(select(ServiceRow).order_by(ServiceRow.created_at)).all()
    by_name = {r.name: r for r in rows}
    for row in rows:
        version = session.get(ServiceVersionRow, (row.id, row.current_version))
        assert version is not None  # a service always has its current version
        meta = Metadata.model_validate(version.config["metadata"])
        rpc = meta.rpc.model_dump()
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
                "revision": _revision(row, version),
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
        route["targets"] = _normalise(route["targets"]) if route["targets"] else {}
    return {"services": services, "routes": routes}


def _refuse_workspace_delete(session: Session, workspace_id: str) -> None:
    names = session.scalars(select(ServiceRow.name).where(ServiceRow.workspace_id == workspace_id)).all()
    if names:
        raise Conflict(
            f"the workspace still has services ({', '.join(names)}); delete them first with `pai eascmd delete NAME`",
            "workspace",
        )


DELETE_GUARDS.append(_refuse_workspace_delete)
