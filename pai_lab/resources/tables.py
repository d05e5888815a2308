"""The resource groups an operator added over REST, the group each workspace chose, and each workspace's
storage (where `eascmd upload` puts model packages)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pai_lab.store import Base, utcnow


class ResourceGroupRow(Base):
    __tablename__ = "resource_groups"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    scheduler_address: Mapped[str] = mapped_column(String(512))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WorkspaceGroupRow(Base):
    __tablename__ = "workspace_resource_groups"

    workspace_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    resource_group: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WorkspaceStorageRow(Base):
    __tablename__ = "workspace_storage"

    workspace_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    model_store: Mapped[str] = mapped_column(Text)  # s3://bucket/prefix or oss://bucket[.endpoint]/prefix
    storage_options: Mapped[dict] = mapped_column(JSON)  # s3fs options, secrets included (shown masked)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
