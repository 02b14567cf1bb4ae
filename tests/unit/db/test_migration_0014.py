"""Migration 0014: the instant columns that were ``DateTime`` become the fixed-width UTC text every
other instant column holds, their values kept, on SQLite and PostgreSQL; the downgrade restores
them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Column, DateTime, Engine, LargeBinary, MetaData, String, Table, select, text

from carnet.db.engine import make_engine
from carnet.db.migrate import alembic_config
from carnet.identity.models import identity, vigilance_item
from tests.support.postgres import ThrowawayPostgres

CREATED = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
UPDATED = datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC)  # no fraction of a second
RESOLVED = datetime(1999, 12, 31, 23, 0, tzinfo=UTC)

# the tables as they were before 0014 (the columns this test writes)
_OLD = MetaData()
_old_identity = Table(
    "identity",
    _OLD,
    Column("id", String(36), primary_key=True),
    Column("status", String(8)),
    Column("state", String(12)),
    Column("traits", LargeBinary),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)
_old_item = Table(
    "vigilance_item",
    _OLD,
    Column("id", String(36), primary_key=True),
    Column("kind", String(24)),
    Column("state", String(12)),
    Column("identity_id", String(36)),
    Column("evidence", String(64)),
    Column("created_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    pg: ThrowawayPostgres = request.getfixturevalue("postgres")
    return make_engine(pg.create_database(f"migration_0014_{uuid.uuid4().hex[:8]}"))


def _write_identity_rows_with_the_old_type(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            _old_identity.insert().values(
                id="i1",
                status="PROV",
                state="active",
                traits=b"x",
                created_at=CREATED,
                updated_at=UPDATED,
            )
        )
        for item_id, resolved in (("open", None), ("done", RESOLVED)):
            conn.execute(
                _old_item.insert().values(
                    id=item_id,
                    kind="duplicate",
                    state="open",
                    identity_id="i1",
                    evidence="{}",
                    created_at=CREATED,
                    resolved_at=resolved,
                )
            )


def test_identity_instants_written_as_datetimes_read_back_equal_after_the_upgrade(
    engine: Engine,
) -> None:
    config = alembic_config(engine)
    command.upgrade(config, "0013")
    _write_identity_rows_with_the_old_type(engine)
    command.upgrade(config, "0014")
    with engine.connect() as conn:
        row = conn.execute(select(identity.c.created_at, identity.c.updated_at)).one()
        items = dict(conn.execute(select(vigilance_item.c.id, vigilance_item.c.resolved_at)).all())
        stored = conn.execute(text("SELECT created_at FROM identity")).scalar_one()
    assert (row.created_at, row.updated_at) == (CREATED, UPDATED)
    assert row.created_at.utcoffset() == row.updated_at.utcoffset() == timedelta(0)
    assert items == {"open": None, "done": RESOLVED}
    assert stored == "2026-03-01T08:30:15.123456Z"  # the one stored form, which sorts as time
    engine.dispose()


def test_instants_sort_as_time_after_the_upgrade(engine: Engine) -> None:
    config = alembic_config(engine)
    command.upgrade(config, "0013")
    _write_identity_rows_with_the_old_type(engine)
    command.upgrade(config, "0014")
    with engine.connect() as conn:
        later = conn.execute(
            select(vigilance_item.c.id).where(vigilance_item.c.resolved_at > RESOLVED)
        ).all()
        first = conn.execute(
            select(vigilance_item.c.id)
            .where(vigilance_item.c.resolved_at.is_not(None))
            .order_by(vigilance_item.c.resolved_at)
        ).scalar_one()
    assert later == [] and first == "done"
    engine.dispose()


def test_downgrade_gives_the_datetimes_back(engine: Engine) -> None:
    config = alembic_config(engine)
    command.upgrade(config, "0013")
    _write_identity_rows_with_the_old_type(engine)
    command.upgrade(config, "0014")
    command.downgrade(config, "0013")
    with engine.connect() as conn:
        row = conn.execute(select(_old_identity.c.created_at, _old_identity.c.updated_at)).one()
        resolved = conn.execute(
            select(_old_item.c.resolved_at).where(_old_item.c.id == "done")
        ).scalar_one()
    as_utc = [m if m.tzinfo else m.replace(tzinfo=UTC) for m in (*row, resolved)]
    assert as_utc == [CREATED, UPDATED, RESOLVED]
    engine.dispose()
