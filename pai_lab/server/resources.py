"""REST routes for resource groups (the Dask clusters jobs run on), each workspace's choice, and its storage."""

from __future__ import annotations

from pai_lab.resources import service, storage
from pai_lab.resources.schemas import (
    ResourceGroup,
    ResourceGroupCreate,
    WorkspaceResourceGroup,
    WorkspaceStorage,
)
from pai_lab.security.paths import Containment
from pai_lab.server.routing import Router

router = Router("resources")


@router.get(
    "/resource-groups",
    name="resource_group.list",
    summary="The resource groups: workers, cores, memory, GPUs and the ranks of the caller's workspaces on them",
    response=list[ResourceGroup],
)
def list_groups(req):
    with req.transaction() as s:
        return service.list_groups(s, req.platform, req.user)


@router.post(
    "/resource-groups",
    name="resource_group.create",
    summary="Add a resource group by its Dask scheduler's address (the server's operator only)",
    body=ResourceGroupCreate,
    response=ResourceGroup,
    status=201,
)
def add_group(req, body: ResourceGroupCreate):
    with req.transaction() as s:
        return service.add_group(s, req.platform, req.user, body)


@router.get("/resource-groups/{name}", name="resource_group.get", summary="One resource group", response=ResourceGroup)
def get_group(req, name):
    with req.transaction() as s:
        return service.describe(s, req.platform, req.user, name)


@router.delete(
    "/resource-groups/{name}",
    name="resource_group.delete",
    summary="Remove a resource group added over the API (the server's operator only; none may use it)",
    status=204,
)
def remove_group(req, name):
    with req.transaction() as s:
        service.remove_group(s, req.platform, req.user, name)


@router.get(
    "/workspaces/{workspace}/resource-group",
    name="workspace.resource_group",
    summary="The resource group the workspace's jobs run on",
    response=WorkspaceResourceGroup,
)
def workspace_group(req, workspace):
    with req.transaction() as s:
        return service.workspace_group(s, req.user, workspace, req.platform)


@router.put(
    "/workspaces/{workspace}/resource-group",
    name="workspace.resource_group.set",
    summary="Choose the workspace's resource group among the operator's (Owner, Administrator)",
    body=WorkspaceResourceGroup,
    response=WorkspaceResourceGroup,
)
def assign_group(req, workspace, body: WorkspaceResourceGroup):
    with req.transaction() as s:
        return service.assign(s, req.platform, req.user, workspace, body)


@router.get(
    "/workspaces/{workspace}/storage",
    name="workspace.storage",
    summary="The workspace's storage: where eascmd upload puts model packages (secrets shown as ***)",
    response=WorkspaceStorage,
)
def get_storage(req, workspace):
    with req.transaction() as s:
        return storage.get_storage(s, req.user, workspace)


@router.put(
    "/workspaces/{workspace}/storage",
    name="workspace.storage.set",
    summary="Point the workspace's model store at an S3/OSS prefix, or at the server's folder (Owner, Administrator)",
    body=WorkspaceStorage,
    response=WorkspaceStorage,
)
def set_storage(req, workspace, body: WorkspaceStorage):
    with req.transaction() as s:
        return storage.set_storage(s, req.user, workspace, body, Containment.from_platform(req.platform))
