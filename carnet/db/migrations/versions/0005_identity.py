"""The master patient index: identities, blocking keys, vigilance queue, quarantine, merges.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("ins_hash", sa.String(32), nullable=True),
        sa.Column("traits", sa.LargeBinary, nullable=False),
        sa.Column("merged_into", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_identity_ins_hash", "identity", ["ins_hash"])
    op.create_index("ix_identity_patient_id", "identity", ["patient_id"])
    op.create_table(
        "identity_block",
        sa.Column("key_hash", sa.String(32), nullable=False),
        sa.Column("identity_id", sa.String(36), nullable=False),
    )
    op.create_index("ix_identity_block_key", "identity_block", ["key_hash"])
    op.create_index("ix_identity_block_identity", "identity_block", ["identity_id"])
    op.create_table(
        "vigilance_item",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("identity_id", sa.String(36), nullable=False),
        sa.Column("candidate_id", sa.String(36), nullable=True),
        sa.Column("weight", sa.Float, nullable=True),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
    )
    op.create_index("ix_vigilance_item_state", "vigilance_item", ["state"])
    op.create_table(
        "quarantine",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("identity_id", sa.String(36), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_to", sa.String(64), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_quarantine_identity", "quarantine", ["identity_id"])
    op.create_table(
        "identity_merge",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("source_id", sa.String(36), nullable=False),
        sa.Column("target_id", sa.String(36), nullable=False),
        sa.Column("item_id", sa.String(36), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "identity_model_params",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("pairs", sa.Integer, nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "identity_model_params",
        "identity_merge",
        "quarantine",
        "vigilance_item",
        "identity_block",
        "identity",
    ):
        op.drop_table(table)
