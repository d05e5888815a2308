"""pipelines: the server driving a run (its claim) and the claim's lease, in the run's row

Revision ID: pipelines_0004
Revises: pipelines_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "pipelines_0004"
down_revision = "pipelines_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("driver", sa.String(300), nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_until", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("driver")
