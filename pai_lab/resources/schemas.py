"""The shapes of resource groups, defined once for the routes, the client and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from pai_lab.schema import Name, NonEmptyName, Schema, Text
from pai_lab.training.schemas import ClusterWorker


class ResourceGroupCreate(Schema):
    """An operator's new group: a name and the Dask scheduler that runs its workers."""

    name: NonEmptyName = Field(description="lower-case letters, digits, - and _; `default` is the embedded cluster")
    scheduler_address: str = Field(
        max_length=512, description="the Dask scheduler's address, tcp://host:port (or tls://...)"
    )


class GroupRank(Schema):
    """A job's rank placed on one of the group's workers."""

    workspace: str
    job_id: str
    pod: str
    state: str
    worker: str


class ResourceGroup(Schema):
    """`eascmd resource ls|desc|li`: one group, its workers as seen now, and the ranks on them."""

    name: str
    scheduler_address: str = Field(description="empty for the embedded LocalCluster until it starts")
    source: str = Field(
        description="embedded (the default group), configured (TrainingManager.resource_groups) or added"
    )
    status: str = Field(description="ResourceReady, ResourcePending (no worker yet) or ResourceUnreachable")
    message: str = ""
    dashboard_link: str | None = None
    workers: list[ClusterWorker] = Field(default_factory=list)
    cores: int = 0
    gpus: int = 0
    memory: int = Field(0, description="bytes over all workers; 0 when unlimited")
    ranks: list[GroupRank] = Field(default_factory=list)
    workspaces: list[str] = Field(default_factory=list, description="the workspaces (of the caller's) that use it")
    created_by: str = ""
    created_at: datetime | None = None


class WorkspaceResourceGroup(Schema):
    """The group a workspace's jobs run on: read by every member, set by its Owner or an Administrator."""

    resource_group: Name = Field(description="a name `pai eascmd resource ls` lists")


class WorkspaceStorage(Schema):
    """Where the workspace's model store is: the server's folder (empty) or an S3/OSS prefix, with the
    storage options (endpoint_url, key, secret...) that reach it; secrets are shown as ``***``."""

    model_store: Text = Field(
        "", description="s3://bucket/prefix or oss://bucket[.endpoint]/prefix; empty: the server's eas-models folder"
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="s3fs options: endpoint_url, region, key, secret (secrets come back as ***)"
    )
