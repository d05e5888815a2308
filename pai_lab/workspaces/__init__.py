"""Workspaces, their members and roles, and the operation log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pai_lab.workspaces.permissions import ROLES, check  # noqa: F401

if TYPE_CHECKING:  # what __getattr__ hands out, for readers and type checkers
    from pai_lab.workspaces.service import (  # noqa: F401
        DEFAULT_WORKSPACE,
        Access,
        add_member,
        authorize,
        create_workspace,
        delete_workspace,
        ensure_default_workspace,
        get_workspace,
        list_members,
        list_operations,
        list_workspaces,
        log_operation,
        remove_member,
        remove_members,
        update_member,
        update_workspace,
    )

_FROM_SERVICE = {
    "DEFAULT_WORKSPACE",
    "Access",
    "add_member",
    "authorize",
    "create_workspace",
    "delete_workspace",
    "ensure_default_workspace",
    "get_workspace",
    "list_members",
    "list_operations",
    "list_workspaces",
    "log_operation",
    "remove_member",
    "remove_members",
    "update_member",
    "update_workspace",
}


def __getattr__(name: str) -> Any:
    # The service (and SQLAlchemy with it, about half a second) loads on first use: the client and the
    # CLI import this package for its schemas only. A plain import, so a broken service fails loudly.
    if name in _FROM_SERVICE:
        from pai_lab.workspaces import service

        return getattr(service, name)
    raise AttributeError(f"module 'pai_lab.workspaces' has no attribute {name!r}")
