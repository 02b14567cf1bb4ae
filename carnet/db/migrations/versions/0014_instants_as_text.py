"""Every instant column holds the same fixed-width UTC text (``carnet.db.instants.Instant``).

Why: instants were ``DateTime(timezone=True)`` in the identity, data-key and bulk-job tables and
fixed-width UTC text (``2026-12-03T10:38:59.123456Z``) everywhere else. One form sorts and
compares the same on SQLite and PostgreSQL and reads back the same aware datetime on both (SQLite
gave naive datetimes, PostgreSQL aware ones in the session's time zone). The values are kept: on
PostgreSQL the column is converted in place; on SQLite, where SQLAlchemy stored
``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, the text is rewritten into the stamp form.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# (table, column, nullable) of every instant column that was a DateTime
COLUMNS = (
    ("identity", "created_at", False),
    ("identity", "updated_at", False),
    ("vigilance_item", "created_at", False),
    ("vigilance_item", "resolved_at", True),
    ("quarantine", "created_at", False),
    ("quarantine", "released_at", True),
    ("identity_merge", "merged_at", False),
    ("identity_merge", "undone_at", True),
    ("identity_model_params", "trained_at", False),
    ("data_key", "created_at", False),
    ("data_key", "destroyed_at", True),
    ("bulk_job", "created_at", False),
    ("bulk_job", "updated_at", False),
    ("import_progress", "updated_at", False),
)
STAMP_WIDTH = 32
PG_STAMP = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def _tables() -> dict[str, list[tuple[str, bool]]]:
    tables: dict[str, list[tuple[str, bool]]] = {}
    for table, column, nullable in COLUMNS:
        tables.setdefault(table, []).append((column, nullable))
    return tables


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in _tables().items():
        if postgres:
            for column, nullable in columns:
                op.alter_column(
                    table,
                    column,
                    type_=sa.String(STAMP_WIDTH),
                    existing_nullable=nullable,
                    postgresql_using=f"to_char({column} AT TIME ZONE 'UTC', '{PG_STAMP}')",
                )
            continue
        with op.batch_alter_table(table) as batch:
            for column, nullable in columns:
                batch.alter_column(
                    column,
                    type_=sa.String(STAMP_WIDTH),
                    existing_type=sa.DateTime(timezone=True),
                    existing_nullable=nullable,
                )
        for column, _nullable in columns:
            # 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC, as SQLAlchemy wrote it) -> 'YYYY-MM-DDTHH:MM:SS.ffffffZ'
            op.execute(
                f"UPDATE {table} SET {column} = replace(substr({column}, 1, 19), ' ', 'T')"
                f" || '.' || substr(substr({column}, 21) || '000000', 1, 6) || 'Z'"
                f" WHERE {column} IS NOT NULL AND {column} NOT LIKE '%Z'"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in _tables().items():
        if postgres:
            for column, nullable in columns:
                op.alter_column(
                    table,
                    column,
                    type_=sa.DateTime(timezone=True),
                    existing_nullable=nullable,
                    postgresql_using=f"{column}::timestamptz",
                )
            continue
        for column, _nullable in columns:
            op.execute(
                f"UPDATE {table} SET {column} = replace(substr({column}, 1, 26), 'T', ' ')"
                f" WHERE {column} IS NOT NULL"
            )
        # the text is copied as it is: reflected as DateTime, batch mode adds no CAST (a CAST to
        # SQLite's NUMERIC affinity would keep only the year)
        as_datetimes = tuple(
            sa.Column(c, sa.DateTime(timezone=True), nullable=n) for c, n in columns
        )
        with op.batch_alter_table(table, reflect_args=as_datetimes) as batch:
            for column, nullable in columns:
                batch.alter_column(
                    column,
                    type_=sa.DateTime(timezone=True),
                    existing_type=sa.String(STAMP_WIDTH),
                    existing_nullable=nullable,
                )
