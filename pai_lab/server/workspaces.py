"""REST routes for workspaces, members, roles and the operation log."""

from __future__ import annotations

from pydantic import Field

from pai_lab import workspaces as ws
from pai_lab.server.routing import Router
from pai_lab.workspaces.schemas import (
    Member,
    MemberAdd,
    MembersRemove,
    MembersRemoved,
    MemberUpdate,
    Operation,
    Schema,
    Workspace,
    WorkspaceCreate,
    WorkspaceUpdate,
)

router = Router("workspaces")


class OplogQuery(Schema):
    limit: int = Field(100, ge=1, le=10000)


@router.get(
    "/workspaces", name="workspace.list", summary="Workspaces the caller is a member of", response=list[Workspace]
)
def list_workspaces(req):
    with req.transaction() as s:
        return ws.list_workspaces(s, req.user)


@router.post(
    "/workspaces",
    name="workspace.create",
    summary="Create a workspace; the caller becomes its Owner",
    body=WorkspaceCreate,
    response=Workspace,
    status=201,
)
def create_workspace(req, body: WorkspaceCreate):
    with req.transaction() as s:
        return ws.create_workspace(s, req.user, body.name, body.description)


@router.get("/workspaces/{workspace}", name="workspace.get", summary="One workspace", response=Workspace)
def get_workspace(req, workspace):
    with req.transaction() as s:
        return ws.get_workspace(s, req.user, workspace)


@router.patch(
    "/workspaces/{workspace}",
    name="workspace.update",
    summary="Rename or describe a workspace",
    body=WorkspaceUpdate,
    response=Workspace,
)
def update_workspace(req, workspace, body: WorkspaceUpdate):
    with req.transaction() as s:
        return ws.update_workspace(s, req.user, workspace, name=body.name, description=body.description)


@router.delete(
    "/workspaces/{workspace}", name="workspace.delete", summary="Delete a workspace (Owner only)", status=204
)
def delete_workspace(req, workspace):
    with req.transaction() as s:
        ws.delete_workspace(s, req.user, workspace)


@router.get(
    "/workspaces/{workspace}/members", name="member.list", summary="Members and their roles", response=list[Member]
)
def list_members(req, workspace):
    with req.transaction() as s:
        return ws.list_members(s, req.user, workspace)


@router.post(
    "/workspaces/{workspace}/members",
    name="member.add",
    summary="Add a member with roles",
    body=MemberAdd,
    response=Member,
    status=201,
)
def add_member(req, workspace, body: MemberAdd):
    with req.transaction() as s:
        return ws.add_member(s, req.user, workspace, body.username, body.roles)


@router.patch(
    "/workspaces/{workspace}/members/{username}",
    name="member.update",
    summary="Replace a member's roles",
    body=MemberUpdate,
    response=Member,
)
def update_member(req, workspace, username, body: MemberUpdate):
    with req.transaction() as s:
        return ws.update_member(s, req.user, workspace, username, body.roles)


@router.delete(
    "/workspaces/{workspace}/members/{username}", name="member.remove", summary="Remove a member", status=204
)
def remove_member(req, workspace, username):
    with req.transaction() as s:
        ws.remove_member(s, req.user, workspace, username)


@router.post(
    "/workspaces/{workspace}/member-removals",
    name="member.remove_many",
    summary="Remove several members at once (all or none; never the Owner)",
    body=MembersRemove,
    response=MembersRemoved,
)
def remove_members(req, workspace, body: MembersRemove):
    with req.transaction() as s:
        return MembersRemoved(removed=ws.remove_members(s, req.user, workspace, body.usernames))


@router.get(
    "/workspaces/{workspace}/oplog",
    name="oplog.list",
    summary="The workspace's operation log",
    query=OplogQuery,
    response=list[Operation],
)
def list_operations(req, workspace, query: OplogQuery):
    with req.transaction() as s:
        return ws.list_operations(s, req.user, workspace, query.limit)
