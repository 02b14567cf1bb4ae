"""The store each test gets from the session's template is the store the product's start-up makes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select

from carnet.app import build_services
from carnet.db.engine import make_engine
from tests.conftest import make_settings
from tests.support.migrated_store import PostgresTemplate, SqliteTemplate
from tests.support.postgres import ThrowawayPostgres

pytestmark = pytest.mark.both_backends


def _contents(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table with its rows, sorted: the schema and everything seeded in it."""
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        return {
            name: sorted(map(tuple, conn.execute(select(table))), key=repr)
            for name, table in tables.tables.items()
        }


def _made_by_build_services(data_dir: Path, url: str) -> dict[str, list[tuple[Any, ...]]]:
    """What the product's own start-up leaves in an empty store (read before it shuts down)."""
    built = build_services(make_settings(data_dir, url), migrate=True)
    try:
        return _contents(built.engine)
    finally:
        built.close()


def test_a_copied_store_holds_what_a_fresh_migration_makes(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        cluster: ThrowawayPostgres = request.getfixturevalue("postgres")
        template: PostgresTemplate = request.getfixturevalue("migrated_postgres")
        copied_url = template.clone(f"copy_{uuid.uuid4().hex[:12]}")
        fresh_url = cluster.create_database(f"fresh_{uuid.uuid4().hex[:12]}")
    else:
        store: SqliteTemplate = request.getfixturevalue("migrated_sqlite")
        store.copy_into(tmp_path / "copied")
        copied_url = f"sqlite:///{tmp_path / 'copied' / 'carnet.sqlite3'}"
        fresh_url = ""  # build_services' own default: carnet.sqlite3 in the data directory
    engine = make_engine(copied_url)
    try:
        copied = _contents(engine)
    finally:
        engine.dispose()
    assert copied == _made_by_build_services(tmp_path / "data", fresh_url)
    assert copied["access_rule"], "the default access rules are seeded in the template"
    assert not copied["audit_checkpoint"], "nothing signed under a key is in the template"


def test_each_test_gets_its_own_sqlite_copy(
    migrated_sqlite: SqliteTemplate, tmp_path: Path
) -> None:
    migrated_sqlite.copy_into(tmp_path / "one")
    written = tmp_path / "one" / "carnet.sqlite3"
    written.write_bytes(b"changed by one test")
    migrated_sqlite.copy_into(tmp_path / "two")
    assert (tmp_path / "two" / "carnet.sqlite3").read_bytes() == migrated_sqlite.image
    assert (tmp_path / "two" / "carnet.sqlite3").stat().st_mode & 0o777 == 0o600
