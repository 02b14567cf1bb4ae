"""Abnormal-access detection: the security officer's alert queue, the flag list, the officers.

Revision ID: 0022
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watch_alert",
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("patients", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("unexplained", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("closed_at", sa.String(32), nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
    )
    op.create_index("uq_watch_alert_actor_day", "watch_alert", ["actor", "day"], unique=True)
    op.create_index("ix_watch_alert_status", "watch_alert", ["status", "score"])
    op.create_table(
        "watch_flag",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("flag", sa.String(8), primary_key=True),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "watch_officer",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("granted_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("watch_officer")
    op.drop_table("watch_flag")
    op.drop_index("ix_watch_alert_status", "watch_alert")
    op.drop_index("uq_watch_alert_actor_day", "watch_alert")
    op.drop_table("watch_alert")
