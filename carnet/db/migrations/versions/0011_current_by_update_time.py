"""The per-type update-time index holds current versions only: ``(res_type, last_updated)
WHERE current``, instead of ``(res_type, current, last_updated)`` over every version.

Why: with the old index, SQLite planned a read of several ids (``res_type = ? AND res_id IN
(...) AND current``: an import batch's prefetch, ``Unit.load``, the superseding UPDATE of a
write) as a walk of every current resource of the type (two equality columns looked better to it
than one equality and an IN list): 67 ms instead of 0.3 ms for 40 Observations of a 1M store,
growing with the store. With the ``current`` column gone from it, the unique current-version
index wins on equality columns, with or without statistics; the listing by update time it
served reads the (smaller) partial index.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_NAME = "ix_fhir_resource_current"
_TABLE = "fhir_resource"


def upgrade() -> None:
    op.drop_index(_NAME, table_name=_TABLE)
    op.create_index(
        _NAME,
        _TABLE,
        ["res_type", "last_updated"],
        sqlite_where=sa.text("current = 1"),
        postgresql_where=sa.text("current"),
    )
    _restat()


def downgrade() -> None:
    op.drop_index(_NAME, table_name=_TABLE)
    op.create_index(_NAME, _TABLE, ["res_type", "current", "last_updated"])
    _restat()


def _restat() -> None:
    """SQLite forgets a dropped index's statistics: a store that had some gets them again."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return  # PostgreSQL plans from its table statistics, which autovacuum keeps
    has_stats = bind.execute(
        sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
    ).scalar_one()
    if has_stats and bind.execute(sa.text("SELECT count(*) FROM sqlite_stat1")).scalar_one():
        bind.exec_driver_sql(f"ANALYZE {_TABLE}")
