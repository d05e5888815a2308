"""training: which stream (stdout or stderr) each log line came from

Revision ID: training_0002
Revises: training_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "training_0002"
down_revision = "training_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_logs") as batch:
        batch.add_column(sa.Column("stream", sa.String(length=8), nullable=False, server_default="stdout"))


def downgrade() -> None:
    with op.batch_alter_table("training_logs") as batch:
        batch.drop_column("stream")
