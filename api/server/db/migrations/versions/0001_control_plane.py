"""The control plane: workflows, their versions, triggers, API keys, imports.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "workflows",
        sa.Column("workflow_id", sa.String(64), primary_key=True),
        sa.Column("current_version", sa.Integer, nullable=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
    )
    op.create_table(
        "workflow_versions",
        sa.Column(
            "workflow_id", sa.String(64), sa.ForeignKey("workflows.workflow_id"), nullable=False
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(80), nullable=False),
        sa.Column("saved_at", stamp, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "version", name="pk_workflow_versions"),
    )
    op.create_table(
        "triggers",
        sa.Column(
            "workflow_id", sa.String(64), sa.ForeignKey("workflows.workflow_id"), nullable=False
        ),
        sa.Column("trigger_id", sa.String(100), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "trigger_id", name="pk_triggers"),
    )
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("workflows", sa.Text, nullable=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
    )
    op.create_table(
        "imports",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("imported_at", stamp, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("imports", "api_keys", "triggers", "workflow_versions", "workflows"):
        op.drop_table(table)
