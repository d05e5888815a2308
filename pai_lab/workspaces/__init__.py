"""Workspaces, their members and roles, and the operation log."""

from pai_lab.workspaces.permissions import ROLES, check  # noqa: F401
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
    update_member,
    update_workspace,
)
