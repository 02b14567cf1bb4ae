"""Planner statistics. SQLite plans badly without them (it drove searches from a low-selectivity
index and scanned every current row of a type); PostgreSQL's autovacuum keeps its own."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

MIN_ROWS_FOR_STATS = 1000


def analyze(engine: Engine) -> None:
    """Refresh the planner's statistics (after a bulk load)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def analyze_if_missing(engine: Engine) -> bool:
    """SQLite: gather statistics once the store holds data and none were gathered yet."""
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as conn:
        try:
            stats = conn.execute(text("SELECT count(*) FROM sqlite_stat1")).scalar_one()
        except (OperationalError, ProgrammingError):
            stats = 0
        rows = conn.execute(text("SELECT count(*) FROM fhir_resource")).scalar_one()
    if stats or rows < MIN_ROWS_FOR_STATS:
        return False
    analyze(engine)
    return True


def reanalyze_tables(conn: Connection, tables: list[str]) -> None:
    """SQLite forgets a dropped index's statistics, and without them it can plan from the wrong
    index: a migration that rebuilds indexes calls this, so that a store that had statistics
    gets them again for these tables (a fresh store is left to ``analyze_if_missing``)."""
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL plans from its table statistics, which autovacuum keeps
    has_stats = conn.execute(
        text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
    ).scalar_one()
    if has_stats and conn.execute(text("SELECT count(*) FROM sqlite_stat1")).scalar_one():
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE {table}")
