"""A gzip bomb for the import limit tests: small on disk, hundreds of MiB once decompressed."""

from __future__ import annotations

import gzip
from pathlib import Path

MIB = 1 << 20


def write_gzip_bomb(path: Path, head: bytes = b"", mib: int = 400) -> Path:
    """A .gz holding ``head`` then one line of ``mib`` MiB, written a MiB at a time."""
    block = b" " * MIB
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(head)
        for _ in range(mib):
            handle.write(block)
        handle.write(b"\n")
    return path
