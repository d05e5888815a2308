"""Workspaces, their members and roles, and the operation log."""

from __future__ import annotations

import importlib
from typing import Any

from pai_lab.workspaces.permissions import ROLES, check  # noqa: F401

_FROM_SERVICE = {
    "DEFAULT_WORKSPACE", "Access", "add_member", "authorize", "create_workspace", "delete_workspace",
    "ensure_default_workspace", "get_workspace", "list_members", "list_operations", "list_workspaces",
    "log_operation", "remove_member", "update_member", "update_workspace",
}


def __getattr__(name: str) -> Any:
    # The service (and SQLAlchemy with it) loads on first use: the client and the CLI only need the
    # schemas, and start noticeably faster without the store's imports.
    if name in _FROM_SERVICE:
        return getattr(importlib.import_module("pai_lab.workspaces.service"), name)
    raise AttributeError(f"module 'pai_lab.workspaces' has no attribute {name!r}")
