"""pipelines: saved operators (the workspace's registry)

Revision ID: pipelines_0002
Revises: pipelines_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "pipelines_0002"
down_revision = "pipelines_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_operators",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("identifier", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("workspace_id", "identifier", "provider", "version", name="uq_pipeline_operators_triple"),
    )
    op.create_index("ix_pipeline_operators_workspace_id", "pipeline_operators", ["workspace_id"])


def downgrade() -> None:
    op.drop_table("pipeline_operators")
