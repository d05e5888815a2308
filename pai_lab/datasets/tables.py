"""Dataset registry tables: datasets, their immutable versions, version manifests, code sources."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pai_lab.store import Base, utcnow


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_datasets_workspace_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    data_type: Mapped[str] = mapped_column(String(16))
    source_kind: Mapped[str] = mapped_column(String(16))  # local, s3, manifest, inline, sample, labeling
    source_uri: Mapped[str] = mapped_column(Text, default="")
    property: Mapped[str] = mapped_column(String(16), default="folder")  # file or folder
    origin: Mapped[str] = mapped_column(String(16), default="user")  # user, labeling, public
    storage_options: Mapped[dict] = mapped_column(JSON, default=dict)
    glob: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(16), default="workspace")
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    mount_path: Mapped[str] = mapped_column(Text, default="")
    item_count: Mapped[int] = mapped_column(BigInteger, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    latest_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"

    dataset_id: Mapped[str] = mapped_column(String(40), ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    base_uri: Mapped[str] = mapped_column(Text, default="")  # items without a manifest line are base_uri + key
    item_count: Mapped[int] = mapped_column(BigInteger, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    digest: Mapped[str] = mapped_column(String(64), default="")  # sha256 of the item index: equal digests, equal items
    hashed: Mapped[bool] = mapped_column(Boolean, default=False)
    # An unchanged re-scan shares the chunks of the version it repeats instead of storing them again.
    chunks_version: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ManifestChunkRow(Base):
    """One block of a version's item index, compressed; a version is its chunks in ``seq`` order."""

    __tablename__ = "dataset_manifest_chunks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["dataset_id", "version"], ["dataset_versions.dataset_id", "dataset_versions.version"], ondelete="CASCADE"
        ),
    )

    dataset_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_index: Mapped[int] = mapped_column(BigInteger)
    item_count: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class CodeSourceRow(Base):
    __tablename__ = "code_sources"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    code_repo: Mapped[str] = mapped_column(Text)
    code_branch: Mapped[str] = mapped_column(String(256), default="")
    code_commit: Mapped[str] = mapped_column(String(64), default="")
    mount_path: Mapped[str] = mapped_column(Text, default="/root/code/")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
