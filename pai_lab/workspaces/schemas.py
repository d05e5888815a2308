from __future__ import annotations

from datetime import datetime

from pydantic import Field

from pai_lab.schema import Schema


class WorkspaceCreate(Schema):
    name: str = Field(description="3-23 characters: starts with a letter; letters, digits and _ only")
    description: str = ""


class WorkspaceUpdate(Schema):
    name: str | None = None
    description: str | None = None


class Workspace(Schema):
    id: str
    name: str
    description: str
    status: str
    created_by: str
    created_at: datetime
    my_roles: list[str] = Field(default_factory=list, description="the caller's roles here")
    member_count: int = 0


class MemberAdd(Schema):
    username: str
    roles: list[str] = Field(min_length=1)


class MemberUpdate(Schema):
    roles: list[str] = Field(min_length=1)


class MembersRemove(Schema):
    usernames: list[str] = Field(min_length=1, max_length=1000, description="members to remove, all or none")


class MembersRemoved(Schema):
    removed: list[str]


class Member(Schema):
    username: str
    roles: list[str]
    added_by: str
    added_at: datetime


class Operation(Schema):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    result: str
    detail: str


class Me(Schema):
    username: str
    server_owner: bool
    version: str
    default_workspace: str = "default"


class RoleInfo(Schema):
    name: str
    description: str


class RoleMatrix(Schema):
    roles: list[RoleInfo]
    areas: dict[str, list[str]]
    grants: dict[str, str]
    matrix: dict[str, dict[str, str]]
