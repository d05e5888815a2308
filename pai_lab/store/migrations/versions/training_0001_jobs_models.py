"""training: jobs, log lines, metric points, models

Revision ID: training_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "training_0001"
down_revision = None
branch_labels = ("training",)
depends_on = "core_0002"


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("launch", sa.JSON, nullable=False),
        sa.Column("pods", sa.JSON, nullable=False),
        sa.Column("history", sa.JSON, nullable=False),
        sa.Column("warnings", sa.JSON, nullable=False),
        sa.Column("work_dir", sa.Text, nullable=False),
        sa.Column("output_dir", sa.Text, nullable=False),
        sa.Column("model", sa.String(300), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_training_jobs_workspace_id", "training_jobs", ["workspace_id"])
    op.create_index("ix_training_jobs_state", "training_jobs", ["state"])
    op.create_index("ix_training_jobs_created_at", "training_jobs", ["created_at"])
    op.create_table(
        "training_logs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(48), sa.ForeignKey("training_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("pod", sa.String(80), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("time", sa.DateTime, nullable=False),
        sa.Column("line", sa.Text, nullable=False),
    )
    op.create_index("ix_training_logs_job_pod_seq", "training_logs", ["job_id", "pod", "seq"])
    op.create_table(
        "training_metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(48), sa.ForeignKey("training_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("pod", sa.String(80), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("time", sa.DateTime, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("ix_training_metrics_job_id", "training_metrics", ["job_id"])
    op.create_table(
        "training_models",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("job_id", sa.String(48), nullable=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("workspace_id", "name", "version", name="uq_training_models_version"),
    )
    op.create_index("ix_training_models_workspace_id", "training_models", ["workspace_id"])


def downgrade() -> None:
    op.drop_table("training_models")
    op.drop_table("training_metrics")
    op.drop_table("training_logs")
    op.drop_table("training_jobs")
