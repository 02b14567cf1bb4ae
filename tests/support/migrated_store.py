"""Stores migrated once per test session, handed to each test as a fresh copy.

Running the 13 migrations for every test that builds the services cost far more than the test
itself. Instead the session migrates one SQLite file and one PostgreSQL template database, and
each test gets a byte copy of the file (``SqliteTemplate.copy_into``) or a database cloned from the
template (``PostgresTemplate.clone``, PostgreSQL's ``CREATE DATABASE ... TEMPLATE``), then builds
its services with ``migrate=False``.

The template holds exactly what ``build_services(migrate=True)`` adds to an empty store (schema,
planner statistics when due, the default access rules) and nothing written under a key: the
keyring stays per test, created in the test's own data directory as before.

Tests of the migrations themselves do not use these: they migrate from scratch.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from carnet.db.engine import make_engine
from carnet.db.maintenance import analyze_if_missing
from carnet.db.migrate import upgrade
from carnet.policy.rules import seed_rules
from carnet.private_files import private_dir, write_private_bytes
from tests.support.postgres import ThrowawayPostgres

SQLITE_FILE = "carnet.sqlite3"  # Settings' default database inside data_dir


def migrate_store(url: str) -> None:
    """What ``build_services(migrate=True)`` does to the database, and nothing else."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        analyze_if_missing(engine)
        with engine.begin() as conn:
            seed_rules(conn)
    finally:
        engine.dispose()


class SqliteTemplate:
    """One migrated SQLite file, copied whole into each test's data directory."""

    def __init__(self, workdir: Path) -> None:
        path = workdir / SQLITE_FILE
        migrate_store(f"sqlite:///{path}")
        # Read through SQLite, not from the file: pages still in the write-ahead log are included.
        conn = sqlite3.connect(path)
        try:
            self.image = conn.serialize()
        finally:
            conn.close()

    def copy_into(self, data_dir: Path) -> None:
        """Give ``data_dir`` (created 0700 if missing) its own migrated store, as a 0600 file."""
        private_dir(data_dir)
        write_private_bytes(data_dir / SQLITE_FILE, self.image)


class PostgresTemplate:
    """One migrated PostgreSQL database that each test's database is cloned from."""

    NAME = "carnet_migrated_template"

    def __init__(self, cluster: ThrowawayPostgres) -> None:
        self.cluster = cluster
        # Every connection to it is closed (the engine is disposed): a template must be idle.
        migrate_store(cluster.create_database(self.NAME))

    def clone(self, name: str) -> str:
        """Create database ``name`` as a copy of the template and return its SQLAlchemy URL."""
        return self.cluster.create_database(name, template=self.NAME)
