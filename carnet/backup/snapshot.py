"""A consistent copy of the SQLite database, taken with SQLite's `VACUUM INTO` while the server
runs (readers and writers go on; the copy is one committed state, rebuilt page by page, so no free
page or free space in it keeps an old value), then stripped of its wrapped data keys (escrowed
apart: carnet/crypto/backup_keys.py) with SQLite's secure delete, so no copy of a key survives in
the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, create_engine, event

from carnet.crypto.backup_keys import BackupKeys, detach_data_keys


class UnsupportedDatabaseError(RuntimeError):
    """A database this version backs up or restores no snapshot of (PostgreSQL: pg_dump next)."""


def sqlite_path(engine: Engine) -> Path:
    if engine.dialect.name != "sqlite" or not engine.url.database:
        raise UnsupportedDatabaseError(
            f"backups of a {engine.dialect.name} database are not supported yet"
        )
    return Path(engine.url.database)


def copy_sqlite(source: Path, copy: Path) -> None:
    """`VACUUM INTO`: the copy is one committed state of the live database, written once and
    compact (the live file's free pages, which may hold deleted or shredded keys, are not
    copied; an online backup copied them, and needed a second full rewrite to drop them)."""
    live = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        live.execute("VACUUM INTO ?", (str(copy),))
    finally:
        live.close()


def strip_data_keys(
    copy: Path,
    keys: BackupKeys,
    exists: Callable[[str], bool],
    put: Callable[[str, bytes], None],
    delete: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """Escrow the copy's live data keys, then erase every wrapped key from the copy's file (the
    copy is compact, from :func:`copy_sqlite`: only the cells holding keys need overwriting)."""
    engine = create_engine(f"sqlite:///{copy}")
    event.listen(engine, "connect", _erasing)
    try:
        with engine.begin() as conn:
            found = detach_data_keys(conn, keys, exists, put, delete)
    finally:
        engine.dispose()
    return found


def _erasing(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # Cleared values are overwritten with zeros, not just unlinked; the rollback journal, which
    # would hold the pages as they were (keys included), stays in memory, never on disk.
    dbapi_connection.execute("PRAGMA secure_delete = ON")
    dbapi_connection.execute("PRAGMA journal_mode = MEMORY")
