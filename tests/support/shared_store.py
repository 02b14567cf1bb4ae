"""Services built once per test module and backend, for worlds that many read-only tests share.

A module fixture cannot ask for the per-test ``backend`` fixture, so such a fixture is
parametrised itself (``params=BOTH_BACKENDS``) and calls ``shared_services`` with its param. The
store is a copy of the session's migrated template, as for ``services``; tests that write get
their own per-test world instead (or write to ids nobody else reads).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from carnet.app import Services, build_services
from tests.conftest import make_settings
from tests.support.migrated_store import PostgresTemplate, SqliteTemplate

BOTH_BACKENDS = ["sqlite", "postgres"]  # the params of a shared fixture of a both_backends suite
_shared_db_counter = itertools.count()


@contextmanager
def shared_services(request: pytest.FixtureRequest, backend: str) -> Iterator[Services]:
    """Services on a migrated store of their own on ``backend``, closed on exit."""
    factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    data_dir = factory.mktemp(f"shared-{backend}") / "data"
    if backend == "postgres":
        template: PostgresTemplate = request.getfixturevalue("migrated_postgres")
        settings = make_settings(data_dir, template.clone(f"shared{next(_shared_db_counter)}"))
    else:
        store: SqliteTemplate = request.getfixturevalue("migrated_sqlite")
        store.copy_into(data_dir)
        settings = make_settings(data_dir)
    built = build_services(settings, migrate=False)
    try:
        yield built
    finally:
        built.close()
