"""Chunked, deduplicated, encrypted storage of files on a target.

Files are cut into fixed-size chunks. Fixed chunks suit what is backed up: SQLite rewrites its
pages in place (a database that changed a little changes a few chunks), and blobs are immutable.
Each chunk is named by a keyed hash of its content, so a chunk already on the target (from an
earlier snapshot, or another blob) is not stored again; it is compressed when that helps, then
sealed with the backup key, its name bound to it.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from carnet.backup.target import Target
from carnet.crypto.backup_keys import BackupKeys, BackupSealError

CHUNK_BYTES = 1 << 20  # a multiple of SQLite's page size
_RAW = b"\x00"
_ZLIB = b"\x01"


class BackupCorruptError(RuntimeError):
    """A chunk is missing or does not authenticate: the snapshot cannot be restored whole."""


@dataclass
class ChunkStats:
    chunks: int = 0
    new_chunks: int = 0
    bytes_read: int = 0
    bytes_stored: int = 0


@dataclass
class ChunkStore:
    target: Target
    keys: BackupKeys
    stats: ChunkStats = field(default_factory=ChunkStats)

    @staticmethod
    def _object(name: str) -> str:
        return f"chunks/{name[:2]}/{name}"

    def write(self, handle: IO[bytes]) -> tuple[list[str], int, str]:
        """Store a file's chunks; returns their names, the size and the SHA-256 of the file."""
        names: list[str] = []
        whole = hashlib.sha256()
        size = 0
        while chunk := handle.read(CHUNK_BYTES):
            whole.update(chunk)
            size += len(chunk)
            name = self.keys.name(chunk)
            names.append(name)
            self.stats.chunks += 1
            self.stats.bytes_read += len(chunk)
            if self.target.exists(self._object(name)):
                continue
            packed = zlib.compress(chunk, 1)
            body = _ZLIB + packed if len(packed) < len(chunk) else _RAW + chunk
            sealed = self.keys.seal(body, aad=name)
            self.target.put(self._object(name), sealed)
            self.stats.new_chunks += 1
            self.stats.bytes_stored += len(sealed)
        return names, size, whole.hexdigest()

    def read(self, names: list[str]) -> Iterator[bytes]:
        """The chunks' content, in order, each checked."""
        for name in names:
            sealed = self.target.get(self._object(name))
            if sealed is None:
                raise BackupCorruptError(f"chunk {name[:16]} is missing from the target")
            try:
                body = self.keys.open(sealed, aad=name)
            except BackupSealError:
                raise BackupCorruptError(f"chunk {name[:16]} does not authenticate") from None
            chunk = zlib.decompress(body[1:]) if body[:1] == _ZLIB else body[1:]
            if self.keys.name(chunk) != name:
                raise BackupCorruptError(f"chunk {name[:16]} holds other content")
            yield chunk

    def restore(self, names: list[str], path: Path, sha256: str) -> None:
        """Write a file from its chunks and check it is the one backed up."""
        whole = hashlib.sha256()
        with path.open("wb") as out:
            for chunk in self.read(names):
                whole.update(chunk)
                out.write(chunk)
        if whole.hexdigest() != sha256:
            raise BackupCorruptError(f"{path.name} does not match its snapshot")

    def referenced(self, manifests: list[list[str]]) -> set[str]:
        return {self._object(n) for names in manifests for n in names}
