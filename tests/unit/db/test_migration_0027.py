"""Migration 0027: the profile's new types (family history, people to contact, "my
professionals") join the persons' and representatives' write rules of a table seeded before it;
a list an operator edited is left alone. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, select

from carnet.db.engine import make_engine
from carnet.db.migrate import alembic_config
from carnet.policy.models import access_rule
from carnet.policy.rules import PROFILE, PROFILE_BEFORE_0027, edit_rule, seed_rules
from tests.support.postgres import ThrowawayPostgres


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    pg: ThrowawayPostgres = request.getfixturevalue("postgres")
    return make_engine(pg.create_database(f"migration_0027_{uuid.uuid4().hex[:8]}"))


def _types(engine: Engine, rule_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(access_rule.c.res_type).where(access_rule.c.rule_id == rule_id)
            ).scalar_one()
        )


def test_upgrade_adds_the_profiles_types_to_unedited_write_rules(engine: Engine) -> None:
    config = alembic_config(engine)
    command.upgrade(config, "0020")
    with engine.begin() as conn:
        seed_rules(conn)
        for rule_id in ("person-self-write", "representative-write"):
            conn.execute(
                access_rule.update()
                .where(access_rule.c.rule_id == rule_id)
                .values(res_type=PROFILE_BEFORE_0027)
            )
        edit_rule(conn, "representative-write", res_types="Observation")  # an operator's choice
    command.upgrade(config, "0027")
    assert _types(engine, "person-self-write") == PROFILE
    assert _types(engine, "representative-write") == "Observation"
    command.downgrade(config, "0020")
    assert _types(engine, "person-self-write") == PROFILE_BEFORE_0027
    engine.dispose()
