"""Deploying a service and changing it, as eascmd defines them: ``create`` (``create -r``: a blue-green
partner) and ``modify`` (scale in place, a new version, or an update of the current one).

Plain functions over a store session; where the model and processor are on this machine is
:mod:`pai_lab.serving.artifacts`. Each change brings the gateway in line once it commits
(:func:`pai_lab.serving.records.bring_in_line`).
"""

from __future__ import annotations

import base64
import copy
import secrets
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict
from pai_lab.serving.artifacts import resolve
from pai_lab.serving.records import Gateway, bring_in_line, check_role, name_taken, service_row, version_row
from pai_lab.serving.schemas import TEST_PREFIX, ServiceSpec
from pai_lab.serving.tables import ServiceRow, ServiceVersionRow
from pai_lab.store import new_id, utcnow

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
    access = check_role(session, user, workspace, "service.deploy", spec.name)
    check_instances(spec, max_instances)
    gateway.check_sandbox(session)  # the instances run the member's code: in the sandbox when the server needs one
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
        while name_taken(session, name):
            name = f"{spec.name}_{secrets.token_hex(4)}"
    elif name_taken(session, name):
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
    bring_in_line(session, gateway)
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
    access = check_role(session, user, workspace, "service.manage", name)
    row = service_row(session, access.workspace_id, name)
    if not isinstance(change, dict) or not change:
        raise BadInput("nothing to change: give keys of the service JSON (for example metadata.instance)", "spec")
    if "name" in change and change["name"] != name:
        raise BadInput("a service cannot be renamed; leave out `name` or use the service's own name", "name")
    if "metadata" in change:
        flat = {k: v for k, v in change["metadata"].items()} if isinstance(change["metadata"], dict) else None
        if flat is None:
            raise BadInput("metadata must be an object", "metadata")
    current = version_row(session, row)
    spec = parse_spec(_deep_merge(current.config, change))
    check_instances(spec, max_instances)
    gateway.check_sandbox(session)
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
    bring_in_line(session, gateway)
    return {
        "service": name,
        "change": kind,
        "current_version": row.current_version,
        "latest_version": row.latest_version,
    }
