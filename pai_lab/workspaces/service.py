"""Workspace domain logic: plain functions over a store session, no HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, Forbidden, NotFound
from pai_lab.store import new_id, utcnow
from pai_lab.workspaces import permissions as perms
from pai_lab.workspaces.schemas import Member, Operation, Workspace
from pai_lab.workspaces.tables import MemberRow, OperationRow, WorkspaceRow

DEFAULT_WORKSPACE = "default"
NAME_RULE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{2,22}$")

# Areas register checks that refuse deleting a workspace while something runs in it.
DELETE_GUARDS: list[Callable[[Session, str], None]] = []


@dataclass(frozen=True)
class Access:
    """A member's access to one workspace, as established by :func:`authorize`."""

    workspace: WorkspaceRow
    username: str
    roles: tuple[str, ...]
    grant: str

    @property
    def workspace_id(self) -> str:
        return self.workspace.id

    def require(
        self, action: str, *, owner: str | None = None, assigned: bool = False, test_service: bool = False
    ) -> Access:
        """The same member checked for another action, without asking the store again."""
        grant = perms.check(
            self.username,
            list(self.roles) if self.roles else None,
            self.workspace.name,
            action,
            owner=owner,
            assigned=assigned,
            test_service=test_service,
        )
        return Access(self.workspace, self.username, self.roles, grant)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise BadInput(
            f"invalid workspace name {name!r}: use 3 to 23 characters, start with a letter, and use only "
            "letters, digits and '_' (for example 'vision_team')",
            "name",
        )
    return name


def validate_roles(roles: list[str]) -> list[str]:
    if not roles:
        raise BadInput("a member needs at least one role; roles are: " + ", ".join(perms.ROLES), "roles")
    unknown = [r for r in roles if r not in perms.ROLES]
    if unknown:
        raise BadInput(f"unknown role {unknown[0]!r}; roles are: {', '.join(perms.ROLES)}", "roles")
    return [r for r in perms.ROLES if r in roles]  # canonical order, no duplicates


def _not_found(ref: str) -> NotFound:
    return NotFound(f"no workspace named {ref!r}; `pai workspace ls` lists yours", "workspace")


def _row(session: Session, ref: str) -> WorkspaceRow:
    row = session.scalar(select(WorkspaceRow).where((WorkspaceRow.name == ref) | (WorkspaceRow.id == ref)))
    if row is None:
        raise _not_found(ref)
    return row


def _roles(session: Session, ws_id: str, username: str) -> list[str] | None:
    member = session.get(MemberRow, (ws_id, username))
    return list(member.roles) if member else None


def authorize(
    session: Session,
    username: str,
    workspace: str,
    action: str,
    *,
    owner: str | None = None,
    assigned: bool = False,
    test_service: bool = False,
) -> Access:
    """Find ``workspace`` (name or id) and check that ``username`` may do ``action`` there."""
    # one round trip for the workspace and the caller's membership: this runs on every request
    found = session.execute(
        select(WorkspaceRow, MemberRow.roles)
        .outerjoin(MemberRow, (MemberRow.workspace_id == WorkspaceRow.id) & (MemberRow.username == username))
        .where((WorkspaceRow.name == workspace) | (WorkspaceRow.id == workspace))
    ).first()
    if found is None:
        raise _not_found(workspace)
    row, member_roles = found
    roles = list(member_roles) if member_roles is not None else None
    grant = perms.check(username, roles, row.name, action, owner=owner, assigned=assigned, test_service=test_service)
    return Access(row, username, tuple(roles or ()), grant)


def _to_schema(session: Session, row: WorkspaceRow, username: str) -> Workspace:
    count = session.scalar(select(func.count()).select_from(MemberRow).where(MemberRow.workspace_id == row.id))
    return Workspace(
        id=row.id,
        name=row.name,
        description=row.description,
        status=row.status,
        created_by=row.created_by,
        created_at=row.created_at,
        my_roles=_roles(session, row.id, username) or [],
        member_count=count or 0,
    )


def ensure_default_workspace(session: Session, owner: str) -> None:
    """Create ``default`` with ``owner`` as its Owner, once; later calls change nothing."""
    if session.scalar(select(WorkspaceRow).where(WorkspaceRow.name == DEFAULT_WORKSPACE)) is None:
        _insert_workspace(session, owner, DEFAULT_WORKSPACE, "Created on first start")
        session.flush()


def _insert_workspace(session: Session, creator: str, name: str, description: str) -> WorkspaceRow:
    row = WorkspaceRow(
        id=new_id("ws"), name=name, description=description, status="Normal", created_by=creator, created_at=utcnow()
    )
    session.add(row)
    session.flush()  # the member row refers to it
    session.add(
        MemberRow(workspace_id=row.id, username=creator, roles=[perms.OWNER], added_by=creator, added_at=utcnow())
    )
    return row


def create_workspace(session: Session, username: str, name: str, description: str = "") -> Workspace:
    validate_name(name)
    if session.scalar(select(WorkspaceRow).where(func.lower(WorkspaceRow.name) == name.lower())):
        raise Conflict(f"a workspace named {name!r} already exists; pick another name", "name")
    row = _insert_workspace(session, username, name, description or "")
    session.flush()
    return _to_schema(session, row, username)


def list_workspaces(session: Session, username: str) -> list[Workspace]:
    rows = session.scalars(
        select(WorkspaceRow)
        .join(MemberRow, MemberRow.workspace_id == WorkspaceRow.id)
        .where(MemberRow.username == username)
        .order_by(WorkspaceRow.created_at, WorkspaceRow.name)
    ).all()
    return [_to_schema(session, r, username) for r in rows]


def get_workspace(session: Session, username: str, ref: str) -> Workspace:
    access = authorize(session, username, ref, "workspace.read")
    return _to_schema(session, access.workspace, username)


def update_workspace(
    session: Session, username: str, ref: str, *, name: str | None = None, description: str | None = None
) -> Workspace:
    access = authorize(session, username, ref, "workspace.update")
    row = access.workspace
    if name is not None and name != row.name:
        if row.name == DEFAULT_WORKSPACE:
            raise BadInput("the default workspace cannot be renamed", "name")
        validate_name(name)
        clash = session.scalar(
            select(WorkspaceRow).where(func.lower(WorkspaceRow.name) == name.lower(), WorkspaceRow.id != row.id)
        )
        if clash:
            raise Conflict(f"a workspace named {name!r} already exists; pick another name", "name")
        row.name = name
    if description is not None:
        row.description = description
    session.flush()
    return _to_schema(session, row, username)


def delete_workspace(session: Session, username: str, ref: str) -> None:
    access = authorize(session, username, ref, "workspace.delete")
    if access.workspace.name == DEFAULT_WORKSPACE:
        raise BadInput("the default workspace cannot be deleted", "workspace")
    for guard in DELETE_GUARDS:
        guard(session, access.workspace.id)
    session.delete(access.workspace)
    session.flush()


def _member(row: MemberRow) -> Member:
    return Member(username=row.username, roles=list(row.roles), added_by=row.added_by, added_at=row.added_at)


def list_members(session: Session, username: str, ref: str) -> list[Member]:
    access = authorize(session, username, ref, "member.read")
    rows = session.scalars(
        select(MemberRow)
        .where(MemberRow.workspace_id == access.workspace_id)
        .order_by(MemberRow.added_at, MemberRow.username)
    ).all()
    return [_member(r) for r in rows]


def _validate_username(username: str) -> str:
    if not isinstance(username, str) or not username.strip() or len(username) > 128:
        raise BadInput("username must be 1 to 128 characters", "username")
    return username.strip()


def add_member(session: Session, username: str, ref: str, member: str, roles: list[str]) -> Member:
    access = authorize(session, username, ref, "member.manage")
    member = _validate_username(member)
    roles = validate_roles(roles)
    if perms.OWNER in roles:
        raise BadInput("a workspace has one Owner, its creator; give the new member Administrator instead", "roles")
    if session.get(MemberRow, (access.workspace_id, member)):
        raise Conflict(
            f"{member!r} is already a member of {access.workspace.name!r}; change their roles with `pai member set`",
            "username",
        )
    row = MemberRow(
        workspace_id=access.workspace_id, username=member, roles=roles, added_by=username, added_at=utcnow()
    )
    session.add(row)
    session.flush()
    return _member(row)


def join_workspace(session: Session, ref: str, username: str, role: str, *, added_by: str) -> None:
    """Make ``username`` a member with ``role`` unless they already are one (no permission check:
    the server's configuration decides this, not a caller)."""
    row = _row(session, ref)
    if session.get(MemberRow, (row.id, username)) is None:
        session.add(
            MemberRow(
                workspace_id=row.id,
                username=username,
                roles=validate_roles([role]),
                added_by=added_by,
                added_at=utcnow(),
            )
        )
        session.flush()


def _existing_member(session: Session, access: Access, member: str) -> MemberRow:
    row = session.get(MemberRow, (access.workspace_id, member))
    if row is None:
        raise NotFound(f"{member!r} is not a member of {access.workspace.name!r}", "username")
    return row


def update_member(session: Session, username: str, ref: str, member: str, roles: list[str]) -> Member:
    access = authorize(session, username, ref, "member.manage")
    row = _existing_member(session, access, member)
    roles = validate_roles(roles)
    had_owner = perms.OWNER in row.roles
    if had_owner and perms.OWNER not in roles:
        raise Forbidden("the Owner role cannot be removed from the workspace's Owner", "roles")
    if not had_owner and perms.OWNER in roles:
        raise BadInput("a workspace has one Owner, its creator; use Administrator instead", "roles")
    row.roles = roles
    session.flush()
    return _member(row)


def remove_member(session: Session, username: str, ref: str, member: str) -> None:
    access = authorize(session, username, ref, "member.manage")
    row = _existing_member(session, access, member)
    if perms.OWNER in row.roles:
        raise Forbidden(f"{member!r} is the Owner of {access.workspace.name!r} and cannot be removed", "username")
    session.delete(row)
    session.flush()


def remove_members(session: Session, username: str, ref: str, members: list[str]) -> list[str]:
    """Remove several members at once (PAI's batch delete): all of them or, when one cannot go, none."""
    access = authorize(session, username, ref, "member.manage")
    names = list(dict.fromkeys(_validate_username(m) for m in members))
    if not names:
        raise BadInput('give at least one member to remove, e.g. {"usernames": ["alice", "bob"]}', "usernames")
    rows = session.scalars(
        select(MemberRow).where(MemberRow.workspace_id == access.workspace_id, MemberRow.username.in_(names))
    ).all()
    missing = sorted(set(names) - {r.username for r in rows})
    if missing:
        raise NotFound(
            f"not members of {access.workspace.name!r}: {', '.join(missing)}; nobody was removed", "usernames"
        )
    owners = [r.username for r in rows if perms.OWNER in r.roles]
    if owners:
        raise Forbidden(
            f"{owners[0]!r} is the Owner of {access.workspace.name!r} and cannot be removed; "
            "nobody was removed (leave the Owner out)",
            "usernames",
        )
    for row in rows:
        session.delete(row)
    session.flush()
    return names


def log_operation(
    session: Session, ref: str, actor: str, action: str, target: str, result: str, detail: str = ""
) -> None:
    row = session.scalar(select(WorkspaceRow).where((WorkspaceRow.name == ref) | (WorkspaceRow.id == ref)))
    if row is None:  # the workspace itself was just deleted, or never existed
        return
    session.add(
        OperationRow(
            workspace_id=row.id,
            at=utcnow(),
            actor=actor,
            action=action,
            target=target[:2000],
            result=result,
            detail=detail[:2000],
        )
    )


def list_operations(session: Session, username: str, ref: str, limit: int = 100) -> list[Operation]:
    access = authorize(session, username, ref, "oplog.read")
    rows = session.scalars(
        select(OperationRow)
        .where(OperationRow.workspace_id == access.workspace_id)
        .order_by(OperationRow.id.desc())
        .limit(max(1, min(limit, 10000)))
    ).all()
    return [
        Operation(id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target, result=r.result, detail=r.detail)
        for r in rows
    ]
