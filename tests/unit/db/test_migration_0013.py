"""Migration 0013: the authors table, and the author-read rule added to a rule table seeded before
it (an empty table is seeded whole by ``seed_rules``), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select

from carnet.audit.events import Actor, Event, Touched, build_event
from carnet.audit.store import AuditStore
from carnet.db.engine import make_engine
from carnet.db.migrate import alembic_config
from carnet.policy.models import access_author, access_care, access_rule
from carnet.policy.rules import DEFAULT_RULES, seed_rules
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


def test_upgrade_closes_the_records_deposits_had_opened(engine: Engine) -> None:
    """Before 0013 a deposit opened the whole record (``source='deposit'``); after it, only a
    declaration or an encounter does: the deposits' relationships are gone, the others kept."""
    config = alembic_config(engine)
    command.upgrade(config, "0012")
    with engine.begin() as conn:
        for rpps, source in (("1", "deposit"), ("2", "declared"), ("3", "encounter")):
            conn.execute(
                access_care.insert().values(
                    patient_id="p",
                    rpps=rpps,
                    source=source,
                    medecin_traitant=False,
                    created_at="2026-01-01T00:00:00.000000Z",
                )
            )
    command.upgrade(config, "0013")
    with engine.connect() as conn:
        kept = {tuple(r) for r in conn.execute(select(access_care.c.rpps, access_care.c.source))}
    assert kept == {("2", "declared"), ("3", "encounter")}
    engine.dispose()


def _event(actor: Actor, action: str, outcome: int, *refs: tuple[str, str, str | None]) -> Event:
    touched = [Touched(t, i, 1, patient) for t, i, patient in refs]
    return build_event(actor, action, refs[0][0], outcome, touched)


def test_upgrade_gives_items_written_before_it_their_authors_from_the_audit_log(
    engine: Engine,
) -> None:
    """Items created before 0013 had no author row (so counted as written by care): the upgrade
    takes each item's author from the audit log's successful create events, so a patient's own
    entries stay theirs."""
    config = alembic_config(engine)
    command.upgrade(config, "0012")
    person = Actor("acct-a", "127.0.0.1", "care", role="person")
    app = Actor("acct-a", "127.0.0.1", "care", role="app", client_id="diary-app")
    backend = Actor("lab", "127.0.0.1", "care", role="backend", client_id="lab")
    events = [
        _event(person, "create", 201, ("Observation", "mine", "p"), ("Organization", "o", None)),
        _event(app, "create", 201, ("Observation", "by-app", "p")),
        _event(backend, "create", 201, ("Observation", "by-lab", "p")),
        _event(person, "create", 403, ("Observation", "refused", "p")),
        _event(person, "update", 200, ("Observation", "by-lab", "p")),
        _event(app, "create", 201, ("Observation", "mine", "p")),  # a later one: not the author
    ]
    with engine.begin() as conn:
        AuditStore(engine).append(conn, events)
    command.upgrade(config, "0013")
    with engine.connect() as conn:
        a = access_author.c
        authors = {
            tuple(r) for r in conn.execute(select(a.res_type, a.res_id, a.author_kind, a.author))
        }
    assert authors == {
        ("Observation", "mine", "person", "acct-a"),
        ("Organization", "o", "person", "acct-a"),
        ("Observation", "by-app", "app", "diary-app"),
    }
    engine.dispose()
