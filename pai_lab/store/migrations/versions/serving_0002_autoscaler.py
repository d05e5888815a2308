"""serving: autoscaling policies and service events

Revision ID: serving_0002
Revises: serving_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "serving_0002"
down_revision = "serving_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_autoscalers",
        sa.Column("service_id", sa.String(32), sa.ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("min_instances", sa.Integer, nullable=False),
        sa.Column("max_instances", sa.Integer, nullable=False),
        sa.Column("strategies", sa.JSON, nullable=False),
        sa.Column("scale_up_window", sa.Integer, nullable=False, server_default="0"),
        sa.Column("scale_down_window", sa.Integer, nullable=False, server_default="300"),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_service_autoscalers_workspace_id", "service_autoscalers", ["workspace_id"])
    op.create_table(
        "service_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service_id", sa.String(32), sa.ForeignKey("services.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("from_instances", sa.Integer, nullable=True),
        sa.Column("to_instances", sa.Integer, nullable=True),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_service_events_service_id", "service_events", ["service_id"])


def downgrade() -> None:
    op.drop_table("service_events")
    op.drop_table("service_autoscalers")
