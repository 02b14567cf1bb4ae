"""Shared fixtures: the two storage backends every spec test runs on.

SQLite runs in a temporary directory; PostgreSQL is a real throwaway cluster started once per
session on loopback (tests/support/postgres.py). If PostgreSQL cannot start, the run fails.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, build_services, create_app
from carnet.settings import Settings
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.corpus import CORPUS as CORPUS  # re-exported: tests import it from here
from tests.support.postgres import ThrowawayPostgres

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as pg:
        yield pg


def make_settings(data_dir: Path, database_url: str = "") -> Settings:
    # The public URL the test clients use (TestClient(base_url="http://127.0.0.1")).
    return Settings.from_env(
        {}, data_dir=str(data_dir), database_url=database_url, public_base_url="http://127.0.0.1"
    )


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = ""
    if backend == "postgres":
        pg: ThrowawayPostgres = request.getfixturevalue("postgres")
        url = pg.create_database(f"t{next(_db_counter)}")
    return make_settings(tmp_path / "data", url)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
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
def sqlite_services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(make_settings(tmp_path / "data"))
    yield built
    built.close()
