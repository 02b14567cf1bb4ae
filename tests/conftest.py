"""Shared fixtures: the storage backends a test runs on, and the services built on them.

SQLite runs in a temporary directory; PostgreSQL is a real throwaway cluster started once per
session (once per xdist worker) on loopback (tests/support/postgres.py). If PostgreSQL cannot
start, the run fails.

Which backends: tests under tests/spec/ and tests marked ``both_backends`` (the security suites,
the stores' own tests) run on SQLite and PostgreSQL; every other test asking for ``backend`` runs on
SQLite only. Every test that touches PostgreSQL is marked ``postgres`` here, so ``-m "not
postgres"`` leaves the cluster unstarted. docs/architecture.md ("Test categories") has the map.

The store is migrated once per session and copied into each test (tests/support/migrated_store.py).
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, build_services, create_app
from carnet.identity.engines import SparkEngine
from carnet.settings import Settings
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.corpus import CORPUS as CORPUS  # re-exported: tests import it from here
from tests.support.forkserver import ForkServer, load_fhir_definitions
from tests.support.migrated_store import PostgresTemplate, SqliteTemplate
from tests.support.postgres import ThrowawayPostgres
from tests.support.schedule import grouped_file_scheduling, schedule_for_workers
from tests.support.spark import small_data_jvm

_db_counter = itertools.count()
_SPEC_DIR = Path(__file__).parent / "spec"
BOTH_BACKENDS = ["sqlite", "postgres"]
SQLITE_ONLY = ["sqlite"]


def backends_for(definition: pytest.Function) -> list[str]:
    """Spec tests and tests marked ``both_backends`` run on both; the rest on SQLite only."""
    if definition.get_closest_marker("both_backends") or definition.path.is_relative_to(_SPEC_DIR):
        return BOTH_BACKENDS
    return SQLITE_ONLY


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", backends_for(metafunc.definition), indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs against the PostgreSQL cluster ``postgres``; order the files for
    the xdist workers, heaviest first (``schedule_for_workers``)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if "postgres" in getattr(item, "fixturenames", ()) or "postgres" in params:
            item.add_marker(pytest.mark.postgres)
    schedule_for_workers(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Before the first test: parse the FHIR definitions (every store uses them; cached per
    process), then freeze what the process holds for its whole life (modules, the collected
    tests, the definitions). The cycle collector's full collections walked those ~300,000 objects
    each time, some 40 times in the Synthea import alone (6.5 of its 55 CPU-seconds); frozen,
    they walk only what the tests make. The product's entry points freeze the same way."""
    if not session.items or session.config.option.collectonly:
        return  # xdist's controller runs no test
    load_fhir_definitions()
    gc.collect()
    gc.freeze()


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent when xdist is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` keeps the files of one group on one worker (tests/support/schedule.py)."""
    if config.getvalue("dist") == "loadfile":
        return grouped_file_scheduling(config, log)
    return None


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate(tmp_path_factory.mktemp("migrated-sqlite"))


@pytest.fixture(scope="session")
def migrated_postgres(postgres: ThrowawayPostgres) -> PostgresTemplate:
    return PostgresTemplate(postgres)


def make_settings(data_dir: Path, database_url: str = "") -> Settings:
    # The public URL the test clients use (TestClient(base_url="http://127.0.0.1")). Password
    # hashes with argon2id's smallest parameters: hundreds of sign-ins run on two shared cores
    # (tests/unit/authn/test_passwords.py proves the product's default is the strong profile).
    return Settings.from_env(
        {},
        data_dir=str(data_dir),
        database_url=database_url,
        public_base_url="http://127.0.0.1",
        password_hash_profile="test-only-weak",
    )


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgres``: parametrised by ``pytest_generate_tests`` above."""
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings on a migrated store of this test's own (a copy of the session's template)."""
    data_dir = tmp_path / "data"
    if backend == "postgres":
        template: PostgresTemplate = request.getfixturevalue("migrated_postgres")
        return make_settings(data_dir, template.clone(f"t{next(_db_counter)}"))
    store: SqliteTemplate = request.getfixturevalue("migrated_sqlite")
    store.copy_into(data_dir)
    return make_settings(data_dir)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=False)  # the store was migrated once per session
    yield built
    built.close()


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    """A client signed in as an operator with system/*.* scopes (sees and writes everything).

    Access rules themselves are tested with callers of every kind in tests/functional/.
    """
    app = create_app(settings, services)
    with TestClient(app, base_url="http://127.0.0.1", headers=bearer(services, TEST_OPERATOR)) as c:
        yield c


@pytest.fixture
def sqlite_services(tmp_path: Path, migrated_sqlite: SqliteTemplate) -> Iterator[Services]:
    migrated_sqlite.copy_into(tmp_path / "data")
    built = build_services(make_settings(tmp_path / "data"), migrate=False)
    yield built
    built.close()


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkEngine]:
    """One Spark session (a JVM, local mode) per worker for every Spark test, started on first use.

    An engine opened later in the same process (``open_engine("spark")``, the CLI's
    ``--engine spark``) uses this session rather than starting and stopping its own. A test that
    needs Spark to fail to start (a bad master URL) must run in a process of its own.
    """
    with small_data_jvm():
        engine = SparkEngine("local[2]", partitions=4)
    with engine:
        yield engine


@pytest.fixture(scope="session")
def forks() -> Iterator[ForkServer]:
    """A parent with carnet imported that forks real processes (tests/support/forkserver.py), one
    per worker: a command, a benchmark or a process to kill without the interpreter's start-up."""
    with ForkServer() as server:
        yield server
