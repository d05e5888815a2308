"""resources: a workspace's storage (its model store on S3 or OSS, with the options that reach it)

Revision ID: resources_0002
Revises: resources_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "resources_0002"
down_revision = "resources_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_storage",
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_store", sa.Text, nullable=False),
        sa.Column("storage_options", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workspace_storage")
