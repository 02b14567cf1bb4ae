"""The personal space: spaces, objections, representatives, notification outbox.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_space",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("ins_hash", sa.String(32), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("provisioned_at", sa.String(32), nullable=False),
        sa.Column("objection_deadline", sa.String(32), nullable=True),
        sa.Column("opened_at", sa.String(32), nullable=True),
        sa.Column("closed_at", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(24), nullable=True),
        sa.Column("retention_until", sa.String(32), nullable=True),
        sa.Column("shredded_at", sa.String(32), nullable=True),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_record_space_ins_hash", "record_space", ["ins_hash"], unique=True)
    op.create_index("ix_record_space_state", "record_space", ["state", "objection_deadline"])
    op.create_index("ix_record_space_retention", "record_space", ["state", "retention_until"])
    op.create_table(
        "record_representative",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("representative_patient_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("since", sa.String(32), nullable=False),
        sa.Column("until", sa.String(32), nullable=True),
        sa.Column("ended_at", sa.String(32), nullable=True),
    )
    op.create_index("ix_record_representative_patient", "record_representative", ["patient_id"])
    op.create_index(
        "ix_record_representative_representative",
        "record_representative",
        ["representative_patient_id"],
    )
    op.create_table(
        "record_notification",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("recipient_patient_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("sent_at", sa.String(32), nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
    )
    op.create_index("ix_record_notification_sent", "record_notification", ["sent_at"])
    op.create_index("ix_record_notification_patient", "record_notification", ["patient_id"])


def downgrade() -> None:
    op.drop_table("record_notification")
    op.drop_table("record_representative")
    op.drop_table("record_space")
