"""Dataset registry shapes, defined once for the routes, the client and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from pai_lab.schema import Int, Schema

DATA_TYPES = ("image", "text", "video", "audio", "tabular", "other")
VISIBILITIES = ("private", "workspace")

DataType = Literal["image", "text", "video", "audio", "tabular", "other"]
Visibility = Literal["private", "workspace"]


class DatasetCreate(Schema):
    name: str = Field(description="1-128 characters: letters, digits, '_', '-', '.'; starts with a letter or digit")
    source: str | None = Field(
        None,
        description="a local file or folder (under the allowed roots), s3://bucket/prefix/, oss://bucket/prefix/"
        " (with an endpoint), a .manifest file, or sample://<name>; omit it when giving `items`",
    )
    data_type: DataType | None = Field(None, description="detected from the items when omitted")
    scan: bool = Field(False, description="walk the source now and write the manifest as version 1")
    glob: str | None = Field(None, description="only items matching these patterns, comma separated ('*.png,*.jpg')")
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    visibility: Visibility = "workspace"
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="s3fs options: endpoint_url, key, secret, token, profile, anon, "
        "client_kwargs; kept with the dataset, secrets never shown back",
    )
    items: list[dict[str, Any] | str] | None = Field(
        None, description="manifest lines ({'data': {...}}) or plain texts, registered as version 1"
    )
    mount_path: str | None = Field(None, description="where training jobs see the data (default /root/data/)")
    hash: bool = Field(False, description="also record a content hash (sha256) of every local item")


class DatasetUpdate(Schema):
    description: str | None = None
    tags: dict[str, str] | None = None
    visibility: Visibility | None = None
    data_type: DataType | None = None


class Dataset(Schema):
    id: str
    name: str
    workspace_id: str
    data_type: str
    description: str = ""
    source_uri: str
    source_kind: str
    property: str
    origin: str
    visibility: str
    tags: dict[str, str] = Field(default_factory=dict)
    glob: str = ""
    mount_path: str = ""
    storage_options: dict[str, Any] = Field(default_factory=dict, description="secrets masked as '***'")
    item_count: int
    total_bytes: int
    latest_version: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class VersionCreate(Schema):
    description: str = ""
    hash: bool = Field(False, description="also record a content hash (sha256) of every local item")
    items: list[dict[str, Any] | str] | None = Field(
        None, description="the new version's manifest lines, for datasets registered from items"
    )


class DatasetVersion(Schema):
    dataset_id: str
    version: int
    item_count: int
    total_bytes: int
    digest: str
    hashed: bool
    skipped: int = Field(0, description="files that vanished or could not be read during the scan")
    description: str = ""
    created_by: str
    created_at: datetime


class DatasetItem(Schema):
    index: int
    key: str
    source: str | None = Field(None, description="data.source of the manifest line")
    size: int | None = None
    stamp: str = Field("", description="mtime (ns) for local files, ETag for objects, digest for manifest lines")
    hash: str = ""
    line: dict[str, Any] = Field(description="the iTAG manifest line")


class ItemPage(Schema):
    version: int
    offset: int
    total: int
    items: list[DatasetItem]


class ItemsQuery(Schema):
    version: Int | None = None
    offset: Int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=10000)


class VersionQuery(Schema):
    version: Int | None = None


class DiffQuery(Schema):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_version: Int = Field(alias="from")
    to_version: Int | None = Field(None, alias="to")
    limit: int = Field(1000, ge=0, le=1_000_000)


class DiffEntry(Schema):
    key: str
    size: int | None = None
    old_size: int | None = None


class DatasetDiff(Schema):
    dataset: str
    from_version: int
    to_version: int
    added_count: int
    removed_count: int
    changed_count: int
    unchanged_count: int
    added: list[DiffEntry]
    removed: list[DiffEntry]
    changed: list[DiffEntry]
    truncated: bool = Field(False, description="the lists hold only the first `limit` entries of each kind")


class CheckReport(Schema):
    dataset: str
    version: int
    ok: bool
    checked: int
    missing_count: int
    changed_count: int
    new_count: int = Field(0, description="items in the source that the version does not list")
    missing: list[str]
    changed: list[str]
    new: list[str]
    message: str


class ScanProgress(Schema):
    dataset: str
    running: bool
    items: int
    bytes: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


class Sample(Schema):
    name: str
    data_type: str
    description: str
    item_count: int


class CodeSourceCreate(Schema):
    display_name: str
    code_repo: str = Field(description="a git URL or a local folder under the allowed roots")
    code_branch: str = ""
    description: str = ""
    mount_path: str = "/root/code/"


class CodeSource(Schema):
    id: str
    display_name: str
    description: str
    code_repo: str
    code_branch: str
    code_commit: str
    mount_path: str
    created_by: str
    created_at: datetime
    updated_at: datetime
