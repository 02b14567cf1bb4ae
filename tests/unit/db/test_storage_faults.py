"""Storage faults are found under whatever wraps them: SQLite codes, PostgreSQL SQLSTATEs, errno."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import psycopg.errors
import pytest
from sqlalchemy.exc import OperationalError

from carnet.db.storage_faults import StorageFault, storage_fault


def _sqlite_error(code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("driver message")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("exc", "fault"),
    [
        (_sqlite_error(13), StorageFault.FULL),  # SQLITE_FULL
        (_sqlite_error(8), StorageFault.READ_ONLY),  # SQLITE_READONLY
        (_sqlite_error(8 | (1 << 8)), StorageFault.READ_ONLY),  # SQLITE_READONLY_RECOVERY
        (_sqlite_error(5), None),  # SQLITE_BUSY: a lock, not the disk
        (psycopg.errors.DiskFull(), StorageFault.FULL),
        (psycopg.errors.ReadOnlySqlTransaction(), StorageFault.READ_ONLY),
        (OSError(errno.ENOSPC, "No space left on device"), StorageFault.FULL),
        (OSError(errno.EROFS, "Read-only file system"), StorageFault.READ_ONLY),
        (OSError(errno.ENOENT, "No such file"), None),
        (ValueError("not storage"), None),
    ],
)
def test_a_storage_fault_is_found_under_its_wrappers(
    exc: BaseException, fault: StorageFault | None
) -> None:
    assert storage_fault(exc) is fault
    wrapped = OperationalError("INSERT ...", {}, exc)  # as SQLAlchemy raises it
    assert storage_fault(wrapped) is fault
    try:
        try:
            raise exc
        except BaseException as inner:
            raise RuntimeError("while writing") from inner
    except RuntimeError as chained:
        assert storage_fault(chained) is fault


def test_a_generic_sqlite_io_error_is_told_apart_by_its_filesystem(tmp_path: Path) -> None:
    """SQLITE_IOERR says nothing of why: a folder with room and write access is no fault."""
    assert storage_fault(_sqlite_error(10), tmp_path) is None
    assert storage_fault(_sqlite_error(10)) is None  # no place to look at: unknown
