"""One-time codes sent through the outbox (``record_activation``) and the code a notification
carries until it is delivered (``record_notification.secret``).

Why: a space created automatically from the register has no account yet; the person activates it
with a code the notification channel delivers (or objects to it), and a forgotten password is
replaced the same way. The clear code lives in the outbox only until delivery; the table keeps
its SHA-256 digest.

Revision ID: 0016
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_activation",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("used_at", sa.String(32), nullable=True),
    )
    op.create_index("ix_record_activation_patient", "record_activation", ["patient_id"])
    with op.batch_alter_table("record_notification") as batch:
        batch.add_column(sa.Column("secret", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("record_notification") as batch:
        batch.drop_column("secret")
    op.drop_index("ix_record_activation_patient", "record_activation")
    op.drop_table("record_activation")
