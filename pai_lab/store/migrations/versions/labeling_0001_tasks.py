"""labeling: templates, tasks, packages, items, answers, package events

Revision ID: labeling_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "labeling_0001"
down_revision = None
branch_labels = ("labeling",)
depends_on = "core_0002"

TABLES = ["label_package_events", "label_answers", "label_items", "label_packages", "label_templates", "label_tasks"]


def upgrade() -> None:
    op.create_table(
        "label_tasks",
        sa.Column("id", sa.String(length=19), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("multi", sa.Boolean(), nullable=False),
        sa.Column("flow", sa.String(length=24), nullable=False),
        sa.Column("check_ratio", sa.Float(), nullable=False),
        sa.Column("package_size", sa.Integer(), nullable=True),
        sa.Column("package_by", sa.String(length=128), nullable=True),
        sa.Column("people", sa.JSON(), nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("initialized", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("dataset", sa.String(length=128), nullable=True),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "name"),
    )
    op.create_index(op.f("ix_label_tasks_workspace_id"), "label_tasks", ["workspace_id"], unique=False)
    op.create_table(
        "label_templates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "name"),
    )
    op.create_index(op.f("ix_label_templates_workspace_id"), "label_templates", ["workspace_id"], unique=False)
    op.create_table(
        "label_packages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=19), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("labeler", sa.String(length=128), nullable=True),
        sa.Column("rework", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["label_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "number"),
    )
    op.create_index("ix_label_packages_task_state", "label_packages", ["task_id", "state"], unique=False)
    op.create_table(
        "label_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=19), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("sampled", sa.Boolean(), nullable=False),
        sa.Column("skipped", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("check", sa.Text(), nullable=True),
        sa.Column("verify", sa.Text(), nullable=True),
        sa.Column("prelabel", sa.Text(), nullable=True),
        sa.Column("prelabel_source", sa.String(length=256), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["package_id"], ["label_packages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["label_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "seq"),
    )
    op.create_index(op.f("ix_label_items_package_id"), "label_items", ["package_id"], unique=False)
    op.create_table(
        "label_package_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=19), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["package_id"], ["label_packages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["label_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_label_package_events_task_id"), "label_package_events", ["task_id"], unique=False)
    op.create_table(
        "label_answers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=19), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("results", sa.Text(), nullable=True),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["label_items.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["label_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "client_id"),
    )
    op.create_index("ix_label_answers_item", "label_answers", ["item_id"], unique=False)
    op.create_index(op.f("ix_label_answers_task_id"), "label_answers", ["task_id"], unique=False)


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
