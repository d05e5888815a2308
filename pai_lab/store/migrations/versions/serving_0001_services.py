"""serving: services and their versions

Revision ID: serving_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "serving_0001"
down_revision = None
branch_labels = ("serving",)
depends_on = "core_0002"


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("token", sa.String(128), nullable=True),
        sa.Column("test", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("entry", sa.String(64), nullable=True),
        sa.Column("entry_token", sa.String(128), nullable=True),
        sa.Column("weight", sa.Integer, nullable=False, server_default="0"),
        sa.Column("endpoint_open", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("current_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("latest_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_services_workspace_id", "services", ["workspace_id"])
    op.create_index("ix_services_name", "services", ["name"], unique=True)
    op.create_index("ix_services_entry", "services", ["entry"])
    op.create_table(
        "service_versions",
        sa.Column("service_id", sa.String(32), sa.ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("resolved", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_versions")
    op.drop_table("services")
