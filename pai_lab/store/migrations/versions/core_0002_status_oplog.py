"""workspace status and the per-workspace operation log

Revision ID: core_0002
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="Normal"))
    op.create_table(
        "operation_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.Text, nullable=False, server_default=""),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_operation_log_workspace_id", "operation_log", ["workspace_id"])
    op.create_index("ix_operation_log_at", "operation_log", ["at"])


def downgrade() -> None:
    op.drop_table("operation_log")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("status")
