"""identity_register: the reference identity register (the INSi stand-in the demo loads), encrypted,
with blind hashes of the matricule and of the search key.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_register",
        sa.Column("ins_hash", sa.String(32), primary_key=True),
        sa.Column("key_hash", sa.String(32), nullable=False),
        sa.Column("record", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_identity_register_key", "identity_register", ["key_hash"])


def downgrade() -> None:
    op.drop_index("ix_identity_register_key", "identity_register")
    op.drop_table("identity_register")
