"""pipelines: runs and their nodes

Revision ID: pipelines_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "pipelines_0001"
down_revision = None
branch_labels = ("pipelines",)
depends_on = "core_0002"


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("pipeline", sa.String(300), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("request", sa.String(16), nullable=False, server_default=""),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("arguments", sa.JSON, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("cache", sa.Boolean, nullable=False),
        sa.Column("sandbox", sa.Text, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("work_dir", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_pipeline_runs_workspace_id", "pipeline_runs", ["workspace_id"])
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status"])
    op.create_index("ix_pipeline_runs_created_at", "pipeline_runs", ["created_at"])
    op.create_table(
        "pipeline_nodes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(48), sa.ForeignKey("pipeline_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("identifier", sa.String(300), nullable=False),
        sa.Column("depends", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("cached", sa.Boolean, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False, server_default=""),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("work_dir", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.UniqueConstraint("run_id", "name", name="uq_pipeline_nodes_run_name"),
    )
    op.create_index("ix_pipeline_nodes_run_id", "pipeline_nodes", ["run_id"])
    op.create_index("ix_pipeline_nodes_cache_key", "pipeline_nodes", ["cache_key"])


def downgrade() -> None:
    op.drop_table("pipeline_nodes")
    op.drop_table("pipeline_runs")
