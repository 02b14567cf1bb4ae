"""Key rotation: the log of rotations (``key_rotation``: which wrapping-key version each rotation
rewrapped to, when it started and ended, so an interrupted one resumes and `carnet keys status`
says when keys last rotated) and a re-keying period per research project (``project_key``'s
``rotate_after_days``: `carnet keys rotate --pseudonyms` re-keys the projects that are due).

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_rotation",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target_key_id", sa.String(64), nullable=True),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32), nullable=True),
        sa.Column("rewrapped", sa.Integer, nullable=False),
    )
    with op.batch_alter_table("project_key") as batch:
        batch.add_column(sa.Column("rotate_after_days", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("project_key") as batch:
        batch.drop_column("rotate_after_days")
    op.drop_table("key_rotation")
