"""Migration 0011: the per-type update-time index becomes partial (current versions only), on
SQLite and PostgreSQL, and the downgrade restores the old one. (Alembic's model comparison does
not look at an index's WHERE clause, so the migration test alone would not see it.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text

from carnet.db.engine import make_engine
from carnet.db.migrate import alembic_config
from tests.support.postgres import ThrowawayPostgres


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    pg: ThrowawayPostgres = request.getfixturevalue("postgres")
    return make_engine(pg.create_database("migration_0011"))


def _definition(engine: Engine) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            query = "SELECT sql FROM sqlite_master WHERE name = 'ix_fhir_resource_current'"
        else:
            query = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_fhir_resource_current'"
        return " ".join(str(conn.execute(text(query)).scalar_one()).split())


def test_upgrade_makes_the_index_partial_and_downgrade_restores_it(engine: Engine) -> None:
    config = alembic_config(engine)
    command.upgrade(config, "0010")
    assert "current, last_updated" in _definition(engine)
    command.upgrade(config, "0011")
    after = _definition(engine)
    assert "(res_type, last_updated)" in after and "WHERE current" in after, after
    command.downgrade(config, "0010")
    before = _definition(engine)
    assert "(res_type, current, last_updated)" in before and "WHERE" not in before, before
    engine.dispose()


def test_statistics_are_gathered_again_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'stats.sqlite3'}")
    config = alembic_config(engine)
    command.upgrade(config, "0010")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO fhir_resource (res_type, res_id, version, last_updated, method, deleted,"
            " current) VALUES ('Patient', 'p1', 1, '2026-01-01', 'POST', 0, 1)"
        )
        conn.exec_driver_sql("ANALYZE")
    command.upgrade(config, "0011")
    with engine.connect() as conn:
        stats = set(conn.execute(text("SELECT idx FROM sqlite_stat1")).scalars())
    assert "ix_fhir_resource_current" in stats
    engine.dispose()
