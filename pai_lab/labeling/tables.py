"""Labeling tables: templates, tasks, packages, items, the answer history, package events and the
embedding builds under way.

An item row holds the *current* answer of each stage as compact iTAG JSON text (what the export
writes, copied without parsing); every answer ever stored, with its author, time and revision,
is also a row of ``label_answers``, which is never updated, so rework keeps the history.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pai_lab.store import Base, utcnow


class TemplateRow(Base):
    __tablename__ = "label_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TaskRow(Base):
    __tablename__ = "label_tasks"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[str] = mapped_column(String(19), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    template: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)  # the template as it was when the task was created
    labels: Mapped[list] = mapped_column(JSON)  # [{"name", "color", "hotkey"}]
    multi: Mapped[bool] = mapped_column(Boolean, default=False)
    flow: Mapped[str] = mapped_column(String(24))
    check_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    package_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    package_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    people: Mapped[dict] = mapped_column(JSON)  # labelers, checkers, acceptors, admins
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    initialized: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(32))  # dataset, lines, import
    dataset: Mapped[str | None] = mapped_column(String(128), nullable=True)
    dataset_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PackageRow(Base):
    __tablename__ = "label_packages"
    __table_args__ = (UniqueConstraint("task_id", "number"), Index("ix_label_packages_task_state", "task_id", "state"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(19), ForeignKey("label_tasks.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1-based within the task
    key: Mapped[str | None] = mapped_column(Text, nullable=True)  # the field value when packaged by a field
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    holder: Mapped[str | None] = mapped_column(String(128), nullable=True)
    labeler: Mapped[str | None] = mapped_column(String(128), nullable=True)  # who last submitted its labels
    rework: Mapped[int] = mapped_column(Integer, default=0)
    comment: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ItemRow(Base):
    __tablename__ = "label_items"
    __table_args__ = (UniqueConstraint("task_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(19), ForeignKey("label_tasks.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # 0-based position in the input manifest
    package_id: Mapped[int] = mapped_column(Integer, ForeignKey("label_packages.id", ondelete="CASCADE"), index=True)
    data: Mapped[str] = mapped_column(Text)  # the input line's "data", compact JSON
    sampled: Mapped[bool] = mapped_column(Boolean, default=True)  # picked for checking
    skipped: Mapped[str | None] = mapped_column(Text, nullable=True)  # invalid item: the reason
    label: Mapped[str | None] = mapped_column(Text, nullable=True)  # current results per stage, compact JSON
    check: Mapped[str | None] = mapped_column(Text, nullable=True)
    verify: Mapped[str | None] = mapped_column(Text, nullable=True)
    prelabel: Mapped[str | None] = mapped_column(Text, nullable=True)  # a suggestion, never an answer
    prelabel_source: Mapped[str | None] = mapped_column(String(256), nullable=True)
    prelabel_score: Mapped[float | None] = mapped_column(Float, nullable=True)  # confidence of the suggestion
    prelabel_scores: Mapped[str | None] = mapped_column(Text, nullable=True)  # {class: probability}, compact JSON
    # per stage: "prediction" (the suggestion kept), "prediction-changed", "manual" (no suggestion)
    label_origin: Mapped[str | None] = mapped_column(String(24), nullable=True)
    check_origin: Mapped[str | None] = mapped_column(String(24), nullable=True)
    verify_origin: Mapped[str | None] = mapped_column(String(24), nullable=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


class AnswerRow(Base):
    __tablename__ = "label_answers"
    __table_args__ = (UniqueConstraint("task_id", "client_id"), Index("ix_label_answers_item", "item_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(19), ForeignKey("label_tasks.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(Integer, ForeignKey("label_items.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(8))
    revision: Mapped[int] = mapped_column(Integer)
    results: Mapped[str | None] = mapped_column(Text, nullable=True)  # None: skipped as invalid
    skip_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    origin: Mapped[str | None] = mapped_column(String(24), nullable=True)  # as on the item; None: skipped
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PackageEventRow(Base):
    __tablename__ = "label_package_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(19), ForeignKey("label_tasks.id", ondelete="CASCADE"), index=True)
    package_id: Mapped[int] = mapped_column(Integer, ForeignKey("label_packages.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EmbeddingBuildRow(Base):
    """Which control plane builds a task's image embedding: a lease over all servers sharing the store,
    taken with a conditional update, renewed while it reads, removed when it ends; a crashed owner's
    lapses at ``expires_at`` (see :mod:`pai_lab.labeling.build_lease`)."""

    __tablename__ = "label_embedding_builds"

    task_id: Mapped[str] = mapped_column(String(19), ForeignKey("label_tasks.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(256))  # host/pid/start of the control plane building it
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    read: Mapped[int] = mapped_column(Integer, default=0)  # images read so far, for the others' progress
    total: Mapped[int] = mapped_column(Integer, default=0)
