"""labeling: the embedding build under way per task (a lease shared by the servers over one store)

Revision ID: labeling_0003
Revises: labeling_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "labeling_0003"
down_revision = "labeling_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_embedding_builds",
        sa.Column("task_id", sa.String(length=19), nullable=False),
        sa.Column("owner", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("read", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["label_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id"),
    )


def downgrade() -> None:
    op.drop_table("label_embedding_builds")
