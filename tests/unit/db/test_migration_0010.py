"""Migration 0010 (covering search indexes) keeps SQLite's planner statistics: without them a
search on a large store can be driven from the wrong index."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from carnet.db.engine import make_engine
from carnet.db.migrate import alembic_config


def test_upgrade_and_downgrade_regather_statistics(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'stats.sqlite3'}")
    config = alembic_config(engine)
    command.upgrade(config, "0009")
    rows = [("Observation", f"o{i}", "code", "http://loinc.org", str(i % 7)) for i in range(50)]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO idx_token (res_type, res_id, param, system, code) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.exec_driver_sql("ANALYZE")

    def stats() -> set[str]:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT idx FROM sqlite_stat1")).scalars())

    command.upgrade(config, "0010")
    assert {"ix_idx_token_value", "ix_idx_token_owner"} <= stats()
    with engine.connect() as conn:
        columns = [r[2] for r in conn.exec_driver_sql("PRAGMA index_info(ix_idx_token_value)")]
    assert columns == ["res_type", "param", "code", "system", "res_id"]
    command.downgrade(config, "0009")
    assert "ix_idx_token_value" in stats()
    engine.dispose()


def test_a_store_without_statistics_gets_none(tmp_path: Path) -> None:
    """A fresh or small store is left to analyze_if_missing (carnet.db.maintenance)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        ).scalar_one()
    assert found == 0
    engine.dispose()
