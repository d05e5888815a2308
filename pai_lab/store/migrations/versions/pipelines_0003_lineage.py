"""pipelines: lineage of what runs made (dataset versions, models, services)

Revision ID: pipelines_0003
Revises: pipelines_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "pipelines_0003"
down_revision = "pipelines_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_lineage",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.String(64), nullable=False, server_default=""),
        sa.Column("run_id", sa.String(48), nullable=False),
        sa.Column("run_name", sa.String(256), nullable=False, server_default=""),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(300), nullable=False, server_default=""),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_pipeline_lineage_workspace_id", "pipeline_lineage", ["workspace_id"])
    op.create_index("ix_pipeline_lineage_run_id", "pipeline_lineage", ["run_id"])
    op.create_index("ix_pipeline_lineage_object", "pipeline_lineage", ["workspace_id", "kind", "name"])


def downgrade() -> None:
    op.drop_table("pipeline_lineage")
