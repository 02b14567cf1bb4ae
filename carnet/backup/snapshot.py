"""A consistent copy of the SQLite database, taken with SQLite's online backup API while the
server runs (readers and writers go on; the copy is one committed state), then stripped of its
wrapped data keys (escrowed apart: carnet/crypto/backup_keys.py) with SQLite's secure delete, so
no copy of a key survives in the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

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
    """SQLite's online backup: the copy is one committed state of the live database."""
    live = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        out = sqlite3.connect(copy)
        try:
            live.backup(out, pages=4096)
        finally:
            out.close()
    finally:
        live.close()


def strip_data_keys(
    copy: Path,
    keys: BackupKeys,
    exists: Callable[[str], bool],
    put: Callable[[str, bytes], None],
    delete: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """Escrow the copy's live data keys, then erase every wrapped key from the copy's file."""
    engine = create_engine(f"sqlite:///{copy}")
    try:
        with engine.begin() as conn:
            conn.execute(text("PRAGMA secure_delete = ON"))  # overwritten, not just unlinked
            found = detach_data_keys(conn, keys, exists, put, delete)
        with engine.connect() as conn:
            conn.execute(text("PRAGMA secure_delete = ON"))
            conn.execute(text("VACUUM"))  # no free page keeps an old value either
    finally:
        engine.dispose()
    return found
