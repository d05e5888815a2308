"""Tables of the pipelines area: runs and their nodes (one per step)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pai_lab.store import Base, utcnow


class RunRow(Base):
    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    pipeline: Mapped[str] = mapped_column(String(300))  # identifier@version of what was run
    status: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    request: Mapped[str] = mapped_column(String(16), default="")  # terminate | suspend: asked, not yet done
    # read only where needed (the driver's start, a run's declared outputs): a wide pipeline's manifest is
    # hundreds of kilobytes, and a run's row is read on every state change and every poll
    manifest: Mapped[dict] = mapped_column(JSON, deferred=True)
    arguments: Mapped[dict] = mapped_column(JSON, default=dict)  # resolved: typed parameters, artifact locations
    outputs: Mapped[list] = mapped_column(JSON, default=list)
    cache: Mapped[bool] = mapped_column(Boolean, default=True)
    sandbox: Mapped[str | None] = mapped_column(Text, nullable=True)  # the bubblewrap binary steps run in
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    work_dir: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # the control plane driving the run (supervision.this_claim; "" none) and until when its claim holds
    # when it is of another host: taken by a conditional update (claims.py), renewed by its driver
    driver: Mapped[str] = mapped_column(String(300), default="")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class NodeRow(Base):
    __tablename__ = "pipeline_nodes"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_pipeline_nodes_run_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(48), ForeignKey("pipeline_runs.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(64))
    identifier: Mapped[str] = mapped_column(String(300))
    depends: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    cache_key: Mapped[str] = mapped_column(String(64), default="", index=True)
    inputs: Mapped[dict] = mapped_column(JSON, default=dict)  # resolved for the attempt that ran
    outputs: Mapped[dict] = mapped_column(JSON, default=dict)  # {"parameters": {...}, "artifacts": {...}}
    work_dir: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class OperatorRow(Base):
    """A saved operator (or pipeline): PAI's identifier-provider-version triple, unique in a workspace."""

    __tablename__ = "pipeline_operators"
    __table_args__ = (
        UniqueConstraint("workspace_id", "identifier", "provider", "version", name="uq_pipeline_operators_triple"),
    )

    id: Mapped[str] = mapped_column(String(48), primary_key=True)  # PAI's pipeline_id
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    identifier: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # script | function | pipeline
    manifest: Mapped[dict] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LineageRow(Base):
    """What made an output of a run (a dataset version, a model version, a service): the run, its step and
    the inputs the step was given. One row per object made; kind + name + version find it."""

    __tablename__ = "pipeline_lineage"
    __table_args__ = (Index("ix_pipeline_lineage_object", "workspace_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # dataset | model | service
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(64), default="")  # "" for a service
    run_id: Mapped[str] = mapped_column(String(48), index=True)  # kept when the run is deleted: history
    run_name: Mapped[str] = mapped_column(String(256), default="")
    step: Mapped[str] = mapped_column(String(64))
    operator: Mapped[str] = mapped_column(String(300), default="")  # identifier@version, or the action taken
    inputs: Mapped[dict] = mapped_column(JSON, default=dict)  # {"parameters": {...}, "artifacts": {...}}
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
