"""Small and read-only filesystems for the storage-fault tests, made with real mounts.

A tmpfs of a few MiB fills up for real (ENOSPC from the kernel, SQLITE_FULL from SQLite), and a
read-only bind mount refuses writes for real (EROFS), even to root, who ignores permissions. Both
need the right to mount (root in the test's machine or container): without it the tests skip,
saying so. Every mount is detached (``umount -l``) when the block ends, however it ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHUNK = b"\0" * (64 * 1024)


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (mount {' '.join(args[:3])}): {done.stderr.strip()}")


def _can_mount() -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk and read-only directory need mounts: run as root")


@contextmanager
def small_disk(where: Path, *, mib: int) -> Iterator[Path]:
    """A tmpfs of ``mib`` MiB mounted at ``where`` for the block."""
    _can_mount()
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={mib}m,mode=0700", "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextmanager
def read_only_view(source: Path, where: Path, *, read_only: bool = True) -> Iterator[Path]:
    """``source`` seen read-only at ``where`` (a bind mount remounted read-only) for the block.
    ``where`` may be ``source`` itself: the folder then turns read-only in place, for every
    process, provided none holds a file in it open for writing. With ``read_only=False``, a plain
    bind mount: ``source`` (a small disk) stands in for ``where``."""
    _can_mount()
    where.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(source), str(where))
    try:
        if read_only:
            _mount("-o", "remount,bind,ro", str(where))
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to its last byte with one file; return it (unlink it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (len(CHUNK), 4096, 512, 1):  # then the last blocks, down to the byte
            try:
                while os.write(fd, CHUNK[:size]):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler
