"""The patient's alerts (``record_alert_choice``, ``record_alert_seen``, ``record_alert_cursor``)
and the history of research opt-outs (``access_research_optout``).

Why: a patient chooses alerts (first access by a professional, a new document; emergency access
is always notified, EHDS art. 9), which a sweep over the audit log queues in the notification
outbox; it remembers which professionals already accessed the record and how far it has read the
log. The research hub must honour an opt-out as it stood at a given instant (an extraction made
before the opt-out is not undone), so each change is kept, not only the current value.

Revision ID: 0018
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_alert_choice",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("first_access", sa.Boolean, nullable=False),
        sa.Column("new_document", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "record_alert_seen",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("actor", sa.String(64), primary_key=True),
        sa.Column("first_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "record_alert_cursor",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("after_leaf", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "access_research_optout",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("changed_at", sa.String(32), primary_key=True),
        sa.Column("opted_out", sa.Boolean, nullable=False),
    )
    # The current opt-outs, so that the history starts from what is stored today.
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "INSERT INTO access_research_optout (patient_id, changed_at, opted_out) "
            "SELECT patient_id, updated_at, research_optout FROM access_preference "
            "WHERE research_optout"
        )
    )


def downgrade() -> None:
    for table in (
        "access_research_optout",
        "record_alert_cursor",
        "record_alert_seen",
        "record_alert_choice",
    ):
        op.drop_table(table)
