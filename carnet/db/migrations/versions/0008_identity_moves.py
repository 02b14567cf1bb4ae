"""identity_merge.moved: the resources a merge re-pointed and the documents it released (ids only),
so that an unmerge moves them back.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_merge") as batch:
        batch.add_column(sa.Column("moved", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identity_merge") as batch:
        batch.drop_column("moved")
