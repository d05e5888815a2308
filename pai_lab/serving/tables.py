"""Services and their versions. Instances are runtime state: the gateway owns them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pai_lab.store import Base, utcnow


class ServiceRow(Base):
    __tablename__ = "services"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    # names are unique on the server: they are the gateway's endpoint paths
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    state: Mapped[str] = mapped_column(String(16), default="Running")  # what the user asked: Running/Stopped
    token: Mapped[str | None] = mapped_column(String(128), nullable=True)
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    parent: Mapped[str | None] = mapped_column(String(64), nullable=True)  # blue-green: created with -r next to it
    entry: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # released onto this endpoint
    entry_token: Mapped[str | None] = mapped_column(String(128), nullable=True)
    weight: Mapped[int] = mapped_column(Integer, default=0)
    endpoint_open: Mapped[bool] = mapped_column(Boolean, default=True)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    message: Mapped[str] = mapped_column(Text, default="")


class ServiceVersionRow(Base):
    __tablename__ = "service_versions"

    service_id: Mapped[str] = mapped_column(String(32), ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    config: Mapped[dict] = mapped_column(JSON)  # the service JSON as given (merged for modify -s)
    resolved: Mapped[dict] = mapped_column(JSON)  # local model/processor folders, warm-up requests
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ServiceAutoscalerRow(Base):
    """A service's autoscaling policy (`eascmd autoscale`), kept with the service so it outlives a restart."""

    __tablename__ = "service_autoscalers"

    service_id: Mapped[str] = mapped_column(String(32), ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    min_instances: Mapped[int] = mapped_column(Integer)
    max_instances: Mapped[int] = mapped_column(Integer)
    strategies: Mapped[dict] = mapped_column(JSON)  # {metric: threshold}: qps per instance, cpu percent
    scale_up_window: Mapped[int] = mapped_column(Integer, default=0)  # seconds
    scale_down_window: Mapped[int] = mapped_column(Integer, default=300)
    created_by: Mapped[str] = mapped_column(String(128))  # the member the autoscaler scales as
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ServiceEventRow(Base):
    """Something that happened to a service and why (the autoscaler's decisions)."""

    __tablename__ = "service_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(32), ForeignKey("services.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))  # ScaleUp, ScaleDown, AutoscalerPaused
    from_instances: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_instances: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
