"""Covering search indexes: the token and reference value indexes also hold the other matched
column and res_id, and the date owner index the parameter and bounds, so that a search's driving
lookup, its per-row checks and a count read the index alone, without a table row per match
(a frequent code's count touched one table row per matching resource).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from carnet.db.maintenance import reanalyze_tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (index, table, columns before, columns after)
_CHANGES = [
    (
        "ix_idx_token_value",
        "idx_token",
        ["res_type", "param", "code"],
        ["res_type", "param", "code", "system", "res_id"],
    ),
    (
        "ix_idx_reference_value",
        "idx_reference",
        ["res_type", "param", "target_id"],
        ["res_type", "param", "target_id", "target_type", "res_id"],
    ),
    (
        "ix_idx_date_owner",
        "idx_date",
        ["res_type", "res_id"],
        ["res_type", "res_id", "param", "low", "high"],
    ),
]


def upgrade() -> None:
    for name, table, _, after in _CHANGES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, after)
    _restat()


def downgrade() -> None:
    for name, table, before, _ in _CHANGES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, before)
    _restat()


def _restat() -> None:
    reanalyze_tables(op.get_bind(), sorted({table for _, table, _, _ in _CHANGES}))
