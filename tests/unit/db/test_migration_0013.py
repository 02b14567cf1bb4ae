"""Migration 0013: the authors table, and the author-read rule added to a rule table seeded before
it (an empty table is seeded whole by ``seed_rules``), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select

from carnet.access.models import access_rule
from carnet.access.rules import DEFAULT_RULES, seed_rules
from carnet.db.engine import make_engine
from carnet.db.migrate import alembic_config
from tests.support.postgres import ThrowawayPostgres


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    pg: ThrowawayPostgres = request.getfixturevalue("postgres")
    return make_engine(pg.create_database(f"migration_0013_{uuid.uuid4().hex[:8]}"))


def _rules(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(access_rule.c.rule_id)).scalars())


def test_upgrade_adds_the_author_rule_to_a_seeded_table(engine: Engine) -> None:
    config = alembic_config(engine)
    command.upgrade(config, "0012")
    with engine.begin() as conn:
        seed_rules(conn)
        conn.execute(access_rule.delete().where(access_rule.c.rule_id == "author-read"))
    command.upgrade(config, "0013")
    assert "access_author" in inspect(engine).get_table_names()
    assert _rules(engine) == {r[0] for r in DEFAULT_RULES}
    command.downgrade(config, "0012")
    assert "author-read" not in _rules(engine)
    assert "access_author" not in inspect(engine).get_table_names()
    engine.dispose()


def test_upgrade_leaves_an_empty_rule_table_to_the_seed(engine: Engine) -> None:
    command.upgrade(alembic_config(engine), "0013")
    assert _rules(engine) == set()
    with engine.begin() as conn:
        seed_rules(conn)
    assert _rules(engine) == {r[0] for r in DEFAULT_RULES}
    engine.dispose()
