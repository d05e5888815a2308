"""Code sources (PAI-DLC ``code_source``): a git repository or a local folder that jobs mount."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.datasets.records import new_dataset_id
from pai_lab.datasets.schemas import CodeSource, CodeSourceCreate
from pai_lab.datasets.sources import Roots
from pai_lab.datasets.tables import CodeSourceRow
from pai_lab.errors import BadInput, NotFound
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize

GIT_URL = re.compile(r"^(https?://|ssh://|git://|git@[^:]+:)\S+$")
DISPLAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def _schema(row: CodeSourceRow) -> CodeSource:
    return CodeSource(
        id=row.id,
        display_name=row.display_name,
        description=row.description or "",
        code_repo=row.code_repo,
        code_branch=row.code_branch or "",
        code_commit=row.code_commit or "",
        mount_path=row.mount_path,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create_code_source(
    session: Session, user: str, workspace: str, spec: CodeSourceCreate, *, roots: Roots | None = None
) -> CodeSource:
    access = authorize(session, user, workspace, "dataset.create")
    if not DISPLAY_NAME.match(spec.display_name or ""):
        raise BadInput(
            f"invalid display_name {spec.display_name!r}: 1-128 letters, digits, '_', '-', '.'", "display_name"
        )
    repo = spec.code_repo.strip()
    if not GIT_URL.match(repo):
        if roots is None:
            raise BadInput("code_repo must be a git URL (https://..., git@host:repo)", "code_repo")
        repo = str(roots.resolve(repo, "code_repo"))
    if not spec.mount_path.startswith("/"):
        raise BadInput(f"mount_path {spec.mount_path!r} must be an absolute path like /root/code/", "mount_path")
    now = utcnow()
    row = CodeSourceRow(
        id=new_dataset_id("code"),
        workspace_id=access.workspace_id,
        display_name=spec.display_name,
        description=spec.description or "",
        code_repo=repo,
        code_branch=spec.code_branch or "",
        code_commit="",
        mount_path=spec.mount_path,
        created_by=user,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return _schema(row)


def list_code_sources(session: Session, user: str, workspace: str, display_name: str | None = None) -> list[CodeSource]:
    access = authorize(session, user, workspace, "dataset.read")
    query = select(CodeSourceRow).where(CodeSourceRow.workspace_id == access.workspace_id)
    if display_name:
        query = query.where(CodeSourceRow.display_name.contains(display_name))
    return [_schema(r) for r in session.scalars(query.order_by(CodeSourceRow.created_at.desc())).all()]


def _row(session: Session, user: str, workspace: str, ref: str) -> CodeSourceRow:
    access = authorize(session, user, workspace, "dataset.read")
    row = session.scalar(
        select(CodeSourceRow).where(
            CodeSourceRow.workspace_id == access.workspace_id,
            (CodeSourceRow.id == ref) | (CodeSourceRow.display_name == ref),
        )
    )
    if row is None:
        raise NotFound(
            f"no code source {ref!r} in workspace {access.workspace.name!r}; `pai dlc get code_source` lists them",
            "code_source",
        )
    return row


def get_code_source(session: Session, user: str, workspace: str, ref: str) -> CodeSource:
    """One code source by ID or display name (training resolves job code sources with it)."""
    return _schema(_row(session, user, workspace, ref))


def delete_code_source(session: Session, user: str, workspace: str, ref: str) -> CodeSource:
    row = _row(session, user, workspace, ref)
    authorize(session, user, workspace, "dataset.delete", owner=row.created_by)
    info = _schema(row)
    session.delete(row)
    session.flush()
    return info
