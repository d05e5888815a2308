"""dataset registry: datasets, versions, manifest chunks, code sources

Revision ID: datasets_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "datasets_0001"
down_revision = None
branch_labels = ("datasets",)
depends_on = "core_0002"


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("data_type", sa.String(16), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False, server_default=""),
        sa.Column("property", sa.String(16), nullable=False, server_default="folder"),
        sa.Column("origin", sa.String(16), nullable=False, server_default="user"),
        sa.Column("storage_options", sa.JSON, nullable=False),
        sa.Column("glob", sa.Text, nullable=False, server_default=""),
        sa.Column("visibility", sa.String(16), nullable=False, server_default="workspace"),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("mount_path", sa.Text, nullable=False, server_default=""),
        sa.Column("item_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("total_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("latest_version", sa.Integer, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("workspace_id", "name", name="uq_datasets_workspace_name"),
    )
    op.create_index("ix_datasets_workspace_id", "datasets", ["workspace_id"])
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_id", sa.String(40), sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("base_uri", sa.Text, nullable=False, server_default=""),
        sa.Column("item_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("total_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("digest", sa.String(64), nullable=False, server_default=""),
        sa.Column("hashed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("chunks_version", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "dataset_manifest_chunks",
        sa.Column("dataset_id", sa.String(40), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("first_index", sa.BigInteger, nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id", "version"], ["dataset_versions.dataset_id", "dataset_versions.version"], ondelete="CASCADE"
        ),
    )
    op.create_table(
        "code_sources",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("code_repo", sa.Text, nullable=False),
        sa.Column("code_branch", sa.String(256), nullable=False, server_default=""),
        sa.Column("code_commit", sa.String(64), nullable=False, server_default=""),
        sa.Column("mount_path", sa.Text, nullable=False, server_default="/root/code/"),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_code_sources_workspace_id", "code_sources", ["workspace_id"])


def downgrade() -> None:
    op.drop_table("code_sources")
    op.drop_table("dataset_manifest_chunks")
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
