"""A world written once per module and backend, copied whole into each test that uses it.

Some suites give every test the same starting world (patients, items, masks, representatives)
and then write to it: they cannot share one store, but building the world again for each test
cost more than most of the tests. Here the world is written once on a store of its own (a copy
of the session's migrated template), its services are closed (everything flushed, every
connection gone), and each test gets a copy of the whole data directory (keyring, audit spool,
SQLite file) or, on PostgreSQL, a database cloned from the world's (``CREATE DATABASE ...
TEMPLATE``), then builds its own services on it. A test's writes stay in its own copy.
"""

from __future__ import annotations

import itertools
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from carnet.app import Services, build_services
from carnet.private_files import private_dir, write_private_bytes
from carnet.settings import Settings
from tests.conftest import make_settings
from tests.support.migrated_store import SQLITE_FILE, PostgresTemplate, SqliteTemplate
from tests.support.shared_store import BOTH_BACKENDS

Ids = TypeVar("Ids")
_world_counter = itertools.count()


def _sqlite_image(path: Path) -> bytes:
    """The database as SQLite reads it: pages still in its write-ahead log included."""
    conn = sqlite3.connect(path)
    try:
        return conn.serialize()
    finally:
        conn.close()


class WorldStore(Generic[Ids]):
    """``write(services)`` run once on a store of its own; ``ids`` is what it returned."""

    def __init__(
        self, request: pytest.FixtureRequest, backend: str, write: Callable[[Services], Ids]
    ) -> None:
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        self.backend = backend
        self.source = factory.mktemp(f"world-{backend}") / "data"
        self.template: PostgresTemplate | None = None
        self.database = ""
        self._copies = itertools.count()
        if backend == "postgres":
            self.template = request.getfixturevalue("migrated_postgres")
            self.database = f"world{next(_world_counter)}"
            settings = make_settings(self.source, self.template.clone(self.database))
        else:
            store: SqliteTemplate = request.getfixturevalue("migrated_sqlite")
            store.copy_into(self.source)
            settings = make_settings(self.source)
        built = build_services(settings, migrate=False)
        try:
            self.ids = write(built)
        finally:
            built.close()  # the world's database idle: a template must have no connection
        self.files = {
            path.name: (_sqlite_image(path) if path.name == SQLITE_FILE else path.read_bytes())
            for path in sorted(self.source.iterdir())
            if path.is_file() and not path.name.startswith(f"{SQLITE_FILE}-")
        }
        spool = self.source / f"{SQLITE_FILE}-audit-spool"
        if spool.exists():
            self.files[spool.name] = _sqlite_image(spool)

    def copy_into(self, data_dir: Path) -> Settings:
        """Settings on a copy of the world of this test's own."""
        private_dir(data_dir)
        for file_name, content in self.files.items():
            write_private_bytes(data_dir / file_name, content)
        for child in self.source.iterdir():
            if child.is_dir():  # the blob store, if the world wrote attachments
                shutil.copytree(child, data_dir / child.name)
        if self.template is None:
            return make_settings(data_dir)
        return make_settings(
            data_dir,
            self.template.cluster.create_database(
                f"{self.database}_copy{next(self._copies)}", template=self.database
            ),
        )


def world_store_fixture(write: Callable[[Services], Ids]) -> Any:
    """A module fixture ``world_store``: ``write``'s world, once per backend (a module says
    ``world_store = world_store_fixture(_write_world)``)."""

    @pytest.fixture(scope="module", params=BOTH_BACKENDS)
    def world_store(request: pytest.FixtureRequest) -> WorldStore[Ids]:
        return WorldStore(request, str(request.param), write)

    return world_store
