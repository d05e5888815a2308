"""Saved operators: the workspace's registry of operators and pipelines (PAI's SavedOperator).

An operator is saved under PAI's identifier-provider-version triple, unique in the workspace; the
provider is the member who saves it (PAI's account UID). Its manifest is checked with the same rules
as a run's, and kept with its code, so a saved operator stays runnable when the notebook's files change.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pai_lab.errors import Conflict, NotFound
from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines.schemas import OperatorSave, SavedOperatorDetail, SavedOperatorInfo
from pai_lab.pipelines.tables import OperatorRow
from pai_lab.pipelines.types import PipelineError, check_name
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _info(row: OperatorRow) -> SavedOperatorInfo:
    return SavedOperatorInfo(
        pipeline_id=row.id,
        identifier=row.identifier,
        provider=row.provider,
        version=row.version,
        kind=row.kind,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _detail(row: OperatorRow) -> SavedOperatorDetail:
    return SavedOperatorDetail(**_info(row).model_dump(), manifest=row.manifest)


def save_operator(session: Session, user: str, workspace: str, body: OperatorSave) -> SavedOperatorDetail:
    access = authorize(session, user, workspace, "pipeline.run")
    identifier = check_name(body.identifier, "identifier")
    if not _VERSION.match(body.version):
        raise PipelineError(
            f"version: {body.version!r} is not allowed; use 1-64 letters, digits, '.', '_' or '-'", "version"
        )
    manifests.check(body.manifest)  # the rules a run applies: a saved operator is one that can run
    if user == "pai":
        raise PipelineError("provider 'pai' is the built-in operators'; save as another member", "identifier")
    kind = manifests.operator_kind(body.manifest)
    manifest = {
        **body.manifest,
        "metadata": {
            **(body.manifest.get("metadata") or {}),
            "identifier": identifier,
            "provider": user,
            "version": body.version,
        },
    }
    taken = session.scalar(
        select(OperatorRow.id).where(
            OperatorRow.workspace_id == access.workspace_id,
            OperatorRow.identifier == identifier,
            OperatorRow.provider == user,
            OperatorRow.version == body.version,
        )
    )
    if taken:
        raise Conflict(
            f"{identifier}@{body.version} of provider {user} is already saved ({taken}); save under another version",
            "version",
        )
    digest = hashlib.sha256(f"{access.workspace_id}/{identifier}/{user}/{body.version}".encode()).hexdigest()
    row = OperatorRow(
        id="pl-" + digest[:16],
        workspace_id=access.workspace_id,
        identifier=identifier,
        provider=user,
        version=body.version,
        kind=kind,
        manifest=manifest,
        created_by=user,
        created_at=utcnow(),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # saved at the same moment by another request
        raise Conflict(f"{identifier}@{body.version} of provider {user} is already saved", "version") from None
    return _detail(row)


BUILTIN_SINCE = datetime(2021, 5, 27)  # the manual's Pipeline SDK chapter


def _builtins(identifier: str | None, provider: str | None, version: str | None) -> list[SavedOperatorDetail]:
    """PAI's built-in operators (provider "pai"): shipped with pai_lab, in every workspace."""
    from pai_lab.pipelines import builtins

    if provider not in (None, "", builtins.PROVIDER) or version not in (None, "", builtins.VERSION):
        return []
    return [
        SavedOperatorDetail(
            pipeline_id=builtins.pipeline_id(name),
            identifier=name,
            provider=builtins.PROVIDER,
            version=builtins.VERSION,
            kind="builtin",
            created_by=builtins.PROVIDER,
            created_at=BUILTIN_SINCE,
            manifest=builtins.manifest(name),
        )
        for name in builtins.SPECS
        if identifier in (None, "", name)
    ]


def list_operators(
    session: Session,
    user: str,
    workspace: str,
    *,
    identifier: str | None = None,
    provider: str | None = None,
    version: str | None = None,
) -> list[SavedOperatorInfo]:
    access = authorize(session, user, workspace, "pipeline.read")
    shipped = [
        SavedOperatorInfo(**b.model_dump(exclude={"manifest"})) for b in _builtins(identifier, provider, version)
    ]
    query = select(OperatorRow).where(OperatorRow.workspace_id == access.workspace_id)
    for column, value in (
        (OperatorRow.identifier, identifier),
        (OperatorRow.provider, provider),
        (OperatorRow.version, version),
    ):
        if value:
            query = query.where(column == value)
    return shipped + [_info(r) for r in session.scalars(query.order_by(OperatorRow.identifier, OperatorRow.version))]


def get_operator(session: Session, user: str, workspace: str, pipeline_id: str) -> SavedOperatorDetail:
    access = authorize(session, user, workspace, "pipeline.read")
    shipped = next((b for b in _builtins(None, None, None) if b.pipeline_id == pipeline_id), None)
    if shipped is not None:
        return shipped
    row = session.get(OperatorRow, pipeline_id)
    if row is None or row.workspace_id != access.workspace_id:
        raise NotFound(
            f"saved operator {pipeline_id!r} not found in this workspace; `ws.pipelines.operators()` lists them",
            "pipeline_id",
        )
    return _detail(row)
