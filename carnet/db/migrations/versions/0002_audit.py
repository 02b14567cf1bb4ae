"""Audit log: events, per-patient slices, Merkle nodes, signed checkpoints, the sequencer row.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("leaf_index", sa.BigInteger, nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_event"),
    )
    op.create_index("uq_audit_event_event_id", "audit_event", ["event_id"], unique=True)
    op.create_index("uq_audit_event_leaf_index", "audit_event", ["leaf_index"], unique=True)
    op.create_table(
        "audit_event_patient",
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("slice", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "seq", name="pk_audit_event_patient"),
    )
    op.create_index("ix_audit_event_patient_seq", "audit_event_patient", ["seq"])
    op.create_table(
        "audit_node",
        sa.Column("level", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("idx", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_audit_node"),
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("tree_size", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name="pk_audit_checkpoint"),
    )
    sequencer = op.create_table(
        "audit_sequencer",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_sequencer"),
    )
    op.bulk_insert(sequencer, [{"id": 1, "tree_size": 0}])


def downgrade() -> None:
    for table in (
        "audit_sequencer",
        "audit_checkpoint",
        "audit_node",
        "audit_event_patient",
        "audit_event",
    ):
        op.drop_table(table)
