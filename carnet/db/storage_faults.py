"""Storage faults: the disk under the store is full, or it cannot be written (read-only).

Both come from several places (SQLite's error codes, PostgreSQL's SQLSTATEs, the operating
system's errno for blobs and files), wrapped by SQLAlchemy or chained by the code that met them.
``storage_fault`` finds the one fault under any of them, so that the API answers 507 or 503 and
the CLI prints one line, instead of a 500 and a traceback. A fault never names what was written.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

from sqlalchemy import Engine

SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
POSTGRES_DISK_FULL = "53100"
POSTGRES_READ_ONLY_TRANSACTION = "25006"
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
# A filesystem with less than this free is full for SQLite's purposes (a page, a WAL frame).
NEARLY_FULL_BYTES = 64 * 1024


class StorageFault(Enum):
    """Why a write could not reach the disk."""

    FULL = "full"
    READ_ONLY = "read-only"

    @property
    def reason(self) -> str:
        """What an operator or a client is told (no path, no value)."""
        if self is StorageFault.FULL:
            return "the data store is full (no space left on its disk)"
        return "the data store is read-only (or not writable by Carnet)"


def storage_fault(exc: BaseException, *places: Path) -> StorageFault | None:
    """The storage fault behind ``exc`` (its driver error, causes and contexts), or None.

    SQLite reports some of them only as a generic I/O error or "unable to open": those are
    told apart by looking at the filesystems of ``places`` (the database's folder, the data
    directory): read-only, or without free space.
    """
    for cause in _chain(exc):
        found = _classify(cause, places)
        if found is not None:
            return found
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                stack.append(linked)


def store_places(engine: Engine, *more: Path) -> tuple[Path, ...]:
    """The folders whose filesystems a store writes: an SQLite database's, then ``more``."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database and database != ":memory:" and not database.startswith("file:"):
        return (Path(database).parent, *more)
    return more


def _classify(exc: BaseException, places: tuple[Path, ...]) -> StorageFault | None:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == SQLITE_FULL:
            return StorageFault.FULL
        if primary == SQLITE_READONLY:
            return StorageFault.READ_ONLY
        if primary in (SQLITE_IOERR, SQLITE_CANTOPEN):
            return next((f for f in map(_filesystem_fault, places) if f is not None), None)
        return None
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == POSTGRES_DISK_FULL:
        return StorageFault.FULL
    if sqlstate == POSTGRES_READ_ONLY_TRANSACTION:
        return StorageFault.READ_ONLY
    if isinstance(exc, OSError):
        if exc.errno in FULL_ERRNOS:
            return StorageFault.FULL
        if exc.errno in READ_ONLY_ERRNOS:
            return StorageFault.READ_ONLY
    return None


def _filesystem_fault(place: Path) -> StorageFault | None:
    """Whether the filesystem holding ``place`` is read-only or full (None: neither, or
    unknown)."""
    folder = place
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK):
        return StorageFault.READ_ONLY
    if stats.f_bavail * stats.f_frsize < NEARLY_FULL_BYTES:
        return StorageFault.FULL
    return None
