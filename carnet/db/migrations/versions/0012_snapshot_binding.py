"""Search snapshots are bound to the caller, the type and the query that made them: table
``search_snapshot_binding`` holds, per snapshot, a keyed digest of the three, its size and its
creation time (carnet/fhir/snapshots.py).

Why: a ``_snapshot`` id from anyone's ``next`` link, replayed by another caller or on another
type's URL, returned the stored resources without the caller's policy. Snapshots made before this
revision have no binding and could only be refused: they are dropped (they live one hour anyway).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM search_snapshot"))
    op.create_table(
        "search_snapshot_binding",
        sa.Column("snapshot_id", sa.String(36), primary_key=True),
        sa.Column("binding", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_search_snapshot_binding_created", "search_snapshot_binding", ["created_at"])


def downgrade() -> None:
    op.drop_table("search_snapshot_binding")
