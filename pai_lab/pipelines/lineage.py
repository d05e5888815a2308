"""Lineage: which run, step and inputs made a dataset version, a model version or a service.

Whatever makes such an object for a run (a platform step, a register or deploy action on a run's
output) calls :func:`record` in the transaction that makes it, so an object and its lineage exist
together or not at all. :func:`lineage_of` reads it back for ``dataset.lineage()`` and ``model.lineage()``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput
from pai_lab.pipelines.lineage_schemas import LineageRecord
from pai_lab.pipelines.tables import LineageRow, RunRow
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize

KINDS = ("dataset", "model", "service")
MAX_RECORDS = 500
_MAX_INPUT_TEXT = 4000  # a long input (a SQL text, a map) is kept clipped: lineage names, it does not copy


def _clip(value):
    if isinstance(value, str) and len(value) > _MAX_INPUT_TEXT:
        return value[:_MAX_INPUT_TEXT] + "..."
    if isinstance(value, dict):
        return {str(k)[:256]: _clip(v) for k, v in list(value.items())[:100]}
    if isinstance(value, list):
        return [_clip(v) for v in value[:100]]
    return value


def record(
    session: Session,
    *,
    workspace_id: str,
    kind: str,
    name: str,
    version: str | int | None,
    run_id: str,
    step: str,
    operator: str,
    inputs: dict,
    user: str,
) -> LineageRecord:
    """Record that ``run_id``'s ``step`` made ``kind`` ``name`` (``version``) from ``inputs``."""
    if kind not in KINDS:
        raise ValueError(f"unknown lineage kind {kind!r}")
    run_name = session.scalar(select(RunRow.name).where(RunRow.id == run_id)) or ""
    row = LineageRow(
        workspace_id=workspace_id,
        kind=kind,
        name=name,
        version="" if version is None else str(version),
        run_id=run_id,
        run_name=run_name,
        step=step,
        operator=operator,
        inputs=_clip(inputs or {}),
        created_by=user,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    status = session.scalar(select(RunRow.status).where(RunRow.id == run_id))
    return _schema(row, status)


def _schema(row: LineageRow, status: str | None) -> LineageRecord:
    return LineageRecord(
        kind=row.kind,  # type: ignore[arg-type]  # only KINDS are ever written
        name=row.name,
        version=row.version,
        run_id=row.run_id,
        run_name=row.run_name,
        run_status=status,
        step=row.step,
        operator=row.operator,
        inputs=row.inputs or {},
        created_by=row.created_by,
        created_at=row.created_at,
    )


def lineage_of(
    session: Session, user: str, workspace: str, kind: str, name: str, version: str | None = None
) -> list[LineageRecord]:
    """The lineage of every version of ``name`` (or of one), newest first. Empty: nothing a run made."""
    if kind not in KINDS:
        raise BadInput(f"kind {kind!r}: lineage is kept for {', '.join(KINDS)}", "kind")
    access = authorize(session, user, workspace, "pipeline.read")
    authorize(session, user, workspace, f"{kind}.read")
    query = select(LineageRow, RunRow.status).outerjoin(RunRow, RunRow.id == LineageRow.run_id)
    query = query.where(LineageRow.workspace_id == access.workspace_id, LineageRow.kind == kind)
    query = query.where(LineageRow.name == name)
    if version:
        query = query.where(LineageRow.version == str(version))
    rows = session.execute(query.order_by(LineageRow.id.desc()).limit(MAX_RECORDS)).all()
    return [_schema(row, status) for row, status in rows]
