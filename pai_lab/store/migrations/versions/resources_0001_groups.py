"""resources: resource groups (Dask clusters by scheduler address) and each workspace's choice

Revision ID: resources_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "resources_0001"
down_revision = None
branch_labels = ("resources",)
depends_on = "core_0002"


def upgrade() -> None:
    op.create_table(
        "resource_groups",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("scheduler_address", sa.String(512), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "workspace_resource_groups",
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("resource_group", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workspace_resource_groups")
    op.drop_table("resource_groups")
