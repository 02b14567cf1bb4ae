"""Migration 0028: one person account per space becomes a constraint of the database (a unique
index on a person account's Patient, person accounts only); a store that already breaks the rule
is refused cleanly and left as it was. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.migration import MigrationContext
from sqlalchemy import Engine, column, inspect, table
from sqlalchemy.exc import IntegrityError

from carnet.db.engine import make_engine
from carnet.db.migrate import alembic_config, upgrade
from tests.support.postgres import ThrowawayPostgres


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    else:
        pg: ThrowawayPostgres = request.getfixturevalue("postgres")
        made = make_engine(pg.create_database(f"migration_0028_{uuid.uuid4().hex[:8]}"))
    yield made
    made.dispose()


# The table as the migrations leave it, written here rather than imported from the models.
_ACCOUNTS = table(
    "access_account",
    *(column(c) for c in ("account_id", "kind", "login_hash", "patient_id")),
    *(column(c) for c in ("failed_logins", "disabled", "created_at")),
)


def _row(n: int, kind: str, patient_id: str | None) -> dict[str, Any]:
    return {
        "account_id": f"00000000-0000-0000-0000-{n:012d}",
        "kind": kind,
        "login_hash": f"login-{n}",
        "patient_id": patient_id,
        "failed_logins": 0,
        "disabled": False,
        "created_at": "2026-01-01T00:00:00.000000+00:00",
    }


def _indexes(engine: Engine) -> list[Any]:
    return sorted(
        (i["name"], tuple(i["column_names"]), i["unique"])
        for i in inspect(engine).get_indexes("access_account")
    )


def test_the_database_gives_a_space_one_person_account(engine: Engine) -> None:
    """One person account per space, where it cannot be raced: the database itself refuses a
    second person account for a Patient (other kinds, and accounts without a Patient, are free)."""
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(_ACCOUNTS.insert(), [_row(1, "person", "p1"), _row(2, "person", "p2")])
        conn.execute(_ACCOUNTS.insert(), [_row(3, "operator", None), _row(4, "operator", None)])
        conn.execute(_ACCOUNTS.insert(), [_row(5, "professional", "p1")])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(_ACCOUNTS.insert(), [_row(6, "person", "p1")])


def test_a_store_where_a_space_has_two_person_accounts_is_refused_by_the_migration(
    engine: Engine,
) -> None:
    """The migration refuses cleanly a store that already breaks the rule: it says so (how many
    spaces, no id), and leaves the store at 0027 as it was; once the extra account is gone, it
    runs."""
    command.upgrade(alembic_config(engine), "0027")
    with engine.begin() as conn:
        conn.execute(_ACCOUNTS.insert(), [_row(1, "person", "p1"), _row(2, "person", "p1")])
    before = _indexes(engine)
    with pytest.raises(RuntimeError, match=r"1 space\(s\).*one person account per space"):
        upgrade(engine)
    assert _indexes(engine) == before
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == ("0027",)
    with engine.begin() as conn:
        conn.execute(
            _ACCOUNTS.delete().where(_ACCOUNTS.c.account_id == _row(2, "", None)["account_id"])
        )
    upgrade(engine)
    assert ("ux_access_account_person", ("patient_id",), True) in _indexes(engine)
