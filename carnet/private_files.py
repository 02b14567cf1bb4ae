"""Files and folders only the service account may read: 0600 files in 0700 folders.

Modes are set at creation and then fixed with chmod, so they do not depend on the process umask
(0022 by default would leave the database, its WAL, blobs and exports readable by every local
user: ciphertext mostly, but also index hashes, codes, dates and the size of every record).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700 folders (existing ones are left as they
    are: the operator chose them)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # created meanwhile by another thread or process
            continue
        folder.chmod(DIR_MODE)
    return path


def open_private(path: Path, *, append: bool = False) -> IO[bytes]:
    """Open ``path`` for writing as a 0600 file (truncated, or appended to)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "ab" if append else "wb")
    except BaseException:
        os.close(fd)
        raise


def write_private_bytes(path: Path, data: bytes) -> None:
    with open_private(path) as handle:
        handle.write(data)


def private_sqlite_file(path: Path) -> None:
    """Make sure an SQLite database file exists as 0600 before SQLite opens it: SQLite creates the
    -wal and -shm files with the database file's permissions, so they are 0600 too."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)  # an empty database
    except FileExistsError:
        pass
    else:
        os.close(fd)
    for suffix in ("", "-wal", "-shm", "-journal"):  # an earlier run may have left them looser
        existing = path.with_name(path.name + suffix)
        try:
            existing.chmod(FILE_MODE)
        except FileNotFoundError:
            continue
        except PermissionError:  # another account's database, opened to read: left as it is
            continue
