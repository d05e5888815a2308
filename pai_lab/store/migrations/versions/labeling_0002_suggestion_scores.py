"""labeling: suggestion scores, and where each answer came from (a suggestion kept, changed, or none)

Revision ID: labeling_0002
Revises: labeling_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "labeling_0002"
down_revision = "labeling_0001"
branch_labels = None
depends_on = None

ITEM_COLUMNS = ("prelabel_score", "prelabel_scores", "label_origin", "check_origin", "verify_origin")


def upgrade() -> None:
    with op.batch_alter_table("label_items") as batch:
        batch.add_column(sa.Column("prelabel_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("prelabel_scores", sa.Text(), nullable=True))
        batch.add_column(sa.Column("label_origin", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("check_origin", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("verify_origin", sa.String(length=24), nullable=True))
    with op.batch_alter_table("label_answers") as batch:
        batch.add_column(sa.Column("origin", sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("label_answers") as batch:
        batch.drop_column("origin")
    with op.batch_alter_table("label_items") as batch:
        for name in ITEM_COLUMNS:
            batch.drop_column(name)
