"""PostgreSQL snapshots with pg_dump and restores with pg_restore (Debian's postgresql-client).

The dump runs on a snapshot exported by a REPEATABLE READ transaction that stays open meanwhile,
and that transaction also reads the digest of every stored body and the data-key table: all three
describe one committed state. The data-key table's rows are dumped without their table data and
without their wrapped keys (escrowed apart, as for SQLite); a restore puts the rows back and
reattaches the keys still escrowed.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from carnet.backup.errors import RestoreError
from carnet.backup.target import Target
from carnet.crypto.backup_keys import (
    BackupKeys,
    data_key_rows,
    escrow_data_keys,
    insert_data_key_rows,
    reattach_data_keys,
)
from carnet.fhir.repository import Repository

DUMP_FILE = "postgres.dump"
DATA_KEYS_FILE = "data_keys.json"
_TIMEOUT_SECONDS = 6 * 3600


class PostgresToolError(RuntimeError):
    """pg_dump or pg_restore is missing or failed (its last line of error output says why)."""


def _libpq_env(url: URL) -> dict[str, str]:
    """Connection parameters for the client tools, from the URL alone: the password in the child's
    environment, never on a command line another user could read."""
    parts = {
        "PGHOST": url.host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password if isinstance(url.password, str) else None,
        "PGDATABASE": url.database,
        "PGSSLMODE": str(url.query.get("sslmode") or "") or None,
    }
    return {k: v for k, v in parts.items() if v}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PostgresToolError(f"{name} not found: install Debian's postgresql-client")
    return found


def _run(args: list[str], url: URL) -> None:
    done = subprocess.run(  # noqa: S603 - our own argument list, no shell
        args,
        env=_libpq_env(url),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise PostgresToolError(f"{Path(args[0]).name} failed: {last}")


def dump_postgres(
    engine: Engine,
    repository: Repository,
    scratch: Path,
    keys: BackupKeys,
    target: Target,
    digest_of: Any,
) -> tuple[list[tuple[str, Path]], int, list[str], tuple[int, str]]:
    """Dump the database into ``scratch``; returns the files to store, the live key count, the
    destroyed owners and (versions, digest) of the stored bodies, all of one snapshot."""
    dump = scratch / DUMP_FILE
    keys_file = scratch / DATA_KEYS_FILE
    snapshot_engine = create_engine(
        engine.url, isolation_level="REPEATABLE READ", poolclass=NullPool
    )
    view = Repository(snapshot_engine, repository.data_keys, repository.indexer, repository.blobs)
    try:
        with view.unit(write=False) as unit:
            exported = unit.conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            _run(
                [
                    _tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={exported}",
                    "--exclude-table-data=data_key",
                    f"--file={dump}",
                ],
                engine.url,
            )
            rows = data_key_rows(unit.conn)
            live, destroyed = escrow_data_keys(
                unit.conn, keys, target.exists, target.put, target.delete
            )
            found = digest_of(unit)
    finally:
        snapshot_engine.dispose()
    keys_file.write_bytes(orjson.dumps(rows))
    return [(DUMP_FILE, dump), (DATA_KEYS_FILE, keys_file)], live, destroyed, found


def restore_postgres(url: URL, files: dict[str, Path], keys: BackupKeys, target: Target) -> None:
    """Restore a dump into an empty database, then its data-key rows and escrowed keys."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalar_one()
        if tables:
            raise RestoreError(f"database {url.database} is not empty: restore into an empty one")
        _run(
            [
                _tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                f"--dbname={url.database}",
                str(files[DUMP_FILE]),
            ],
            url,
        )
        with engine.begin() as conn:
            insert_data_key_rows(conn, orjson.loads(files[DATA_KEYS_FILE].read_bytes()))
            reattach_data_keys(conn, keys, target.get)
    finally:
        engine.dispose()


@contextmanager
def scratch_database(url: URL) -> Iterator[URL]:
    """An empty database beside ``url``'s, dropped afterwards (for drills)."""
    name = f"carnet_drill_{secrets.token_hex(6)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
