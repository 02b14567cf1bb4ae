"""The store each test gets from the session's template is the store the product's start-up makes."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, select, text

from carnet.app import build_services, create_app
from carnet.db.engine import make_engine
from carnet.settings import Settings
from tests.conftest import make_settings
from tests.support.auth import bearer
from tests.support.migrated_store import PostgresTemplate, SqliteTemplate
from tests.support.postgres import ThrowawayPostgres
from tests.support.reusable_database import TemplateState

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


# -- PostgreSQL: databases lent from a pool and put back into the template's state ---------------

PATIENT = {"resourceType": "Patient", "name": [{"family": "Pool", "given": ["Test"]}]}


def _state(cluster: ThrowawayPostgres, url: str) -> TemplateState:
    """Everything a reset restores, read from the database at ``url`` (rows as digests)."""
    with cluster.connect(url.rsplit("/", 1)[1]) as conn:
        return TemplateState.of(conn)


def _as_template(template: PostgresTemplate) -> TemplateState:
    return dataclasses.replace(template.state, rows={})


def _write_through_the_product(data_dir: Path, url: str) -> None:
    """A patient created over HTTP (resource rows, index rows, audit events, sequences) and a
    default access rule edited: what tests do to a store."""
    settings = make_settings(data_dir, url)
    built = build_services(settings, migrate=False)
    try:
        with TestClient(create_app(settings, built), base_url="http://127.0.0.1") as client:
            created = client.post("/fhir/Patient", json=PATIENT, headers=bearer(built))
            assert created.status_code == 201, created.text
        with built.engine.begin() as conn:
            conn.execute(text("UPDATE access_rule SET description = 'edited by a test'"))
    finally:
        built.close()


def _patients(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM fhir_resource WHERE res_type = 'Patient'"
            return int(conn.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_database_lent_again_after_a_writing_test_is_in_the_template_state(
    migrated_postgres: PostgresTemplate, postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    with migrated_postgres.lend() as first:
        assert _state(postgres, first) == _as_template(migrated_postgres)
        _write_through_the_product(tmp_path / "one", first)
    with migrated_postgres.lend() as second:
        assert second == first, "the pool lends the database the writing test used"
        assert _patients(second) == 0
        assert _state(postgres, second) == _as_template(migrated_postgres)
        _write_through_the_product(tmp_path / "two", second)  # the same writes succeed again
        assert _patients(second) == 1


@pytest.mark.postgres
def test_the_state_comparison_catches_what_a_test_leaves_behind(
    migrated_postgres: PostgresTemplate, postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    """The check above can fail: a leftover row, rule or sequence value is seen."""
    with migrated_postgres.lend() as url:
        _write_through_the_product(tmp_path / "data", url)
        left = _state(postgres, url)
    template = _as_template(migrated_postgres)
    assert left != template
    assert left.table_sizes != template.table_sizes, "the patient's rows are seen"
    assert left.digests["public.access_rule"] != template.digests["public.access_rule"]
    assert left.sequences != template.sequences, "the audit's sequence moved"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "change",
    [
        "CREATE TABLE left_by_a_test (id integer)",
        "CREATE INDEX left_by_a_test ON access_rule (description)",
        "ANALYZE access_rule",
        "ALTER TABLE access_rule ADD COLUMN left_by_a_test integer",
    ],
)
def test_a_schema_or_statistics_change_is_undone_by_cloning_again(
    migrated_postgres: PostgresTemplate, postgres: ThrowawayPostgres, change: str
) -> None:
    with migrated_postgres.lend() as url, postgres.connect(url.rsplit("/", 1)[1]) as conn:
        conn.execute(change)
    with migrated_postgres.lend() as again:
        assert again == url
        assert _state(postgres, again) == _as_template(migrated_postgres)


@pytest.mark.parametrize("order", ["writes", "reads"])
def test_tests_on_lent_databases_see_only_the_template_whatever_ran_before(
    settings: Settings, order: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """Through the ``settings`` fixture, in both orders (run alone, reversed, or by node id)."""
    url = settings.database_url or f"sqlite:///{settings.data_dir / 'carnet.sqlite3'}"
    assert _patients(url) == 0
    if backend == "postgres":
        cluster: ThrowawayPostgres = request.getfixturevalue("postgres")
        template: PostgresTemplate = request.getfixturevalue("migrated_postgres")
        assert _state(cluster, url) == _as_template(template)
    if order == "writes":
        _write_through_the_product(settings.data_dir, settings.database_url)
        assert _patients(url) == 1
