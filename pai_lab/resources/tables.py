"""The resource groups an operator added over REST, and the group each workspace chose."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
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
