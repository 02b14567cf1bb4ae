"""Driver-level bulk writes, for the hot paths (index rows, audit events) where SQLAlchemy's
per-row parameter processing costs more than the database work itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert rows given as tuples in ``columns`` order: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy,
        ):
            write_row = copy.write_row
            for row in rows:
                write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", list(rows))


def execute_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """One statement with positional ``?`` markers run for every row, through the driver."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    conn.exec_driver_sql(sql, list(rows))


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows (dicts that all carry the same keys) at the driver's speed."""
    if rows:
        columns = tuple(rows[0])
        insert_rows(conn, table, columns, [tuple(row[c] for c in columns) for row in rows])


def insert_ignoring_duplicates(
    conn: Connection, table: Table, columns: tuple[str, ...], rows: set[tuple[str, str, str]]
) -> None:
    """Insert rows, skipping those a unique index already holds (the same text hashes recur)."""
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        marks = ", ".join("%s" for _ in columns)
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    else:
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT OR IGNORE INTO {table.name} ({names}) VALUES ({marks})"
    conn.exec_driver_sql(sql, sorted(rows))
