"""Code texts for token :text search, search result snapshots for stable paging, and a partial
unique index on the current version of each resource.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_text",
        sa.Column("system", sa.String(255), nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.Column("value", sa.String(32), nullable=False),
    )
    op.create_index("uq_code_text", "code_text", ["system", "code", "value"], unique=True)
    op.create_index("ix_code_text_value", "code_text", ["value"])
    op.create_table(
        "search_snapshot",
        sa.Column("snapshot_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index(
        "uq_search_snapshot", "search_snapshot", ["snapshot_id", "position"], unique=True
    )
    op.create_index("ix_search_snapshot_created", "search_snapshot", ["created_at"])
    op.create_index(
        "uq_fhir_resource_current",
        "fhir_resource",
        ["res_type", "res_id"],
        unique=True,
        sqlite_where=sa.text("current = 1"),
        postgresql_where=sa.text("current"),
    )


def downgrade() -> None:
    op.drop_index("uq_fhir_resource_current", "fhir_resource")
    op.drop_table("search_snapshot")
    op.drop_table("code_text")
