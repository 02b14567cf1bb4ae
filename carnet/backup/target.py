"""Where backups go: a target stores named objects and declares its jurisdiction.

A directory target keeps each object in a file (written to a temporary name, then renamed, so a
crash never leaves half an object under its name). An S3-compatible target implements the same
five methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from carnet.private_files import private_dir, write_private_bytes


class Target(Protocol):
    """A store of named objects; names are relative paths (``chunks/ab/abcd...``)."""

    jurisdiction: str
    location: str

    def exists(self, name: str) -> bool: ...

    def put(self, name: str, data: bytes) -> None: ...

    def get(self, name: str) -> bytes | None: ...

    def delete(self, name: str) -> None: ...

    def names(self, prefix: str) -> Iterator[str]: ...


class DirectoryTarget:
    """Objects as files under ``root`` (a mounted disk, a NAS), readable by their owner only."""

    def __init__(self, root: Path, jurisdiction: str) -> None:
        self.root = root
        self.jurisdiction = jurisdiction
        self.location = str(root)

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError("object names stay inside the target")
        return path

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        private_dir(path.parent)
        tmp = path.with_name(path.name + ".tmp")
        write_private_bytes(tmp, data)
        tmp.replace(path)

    def get(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".tmp"):
                yield path.relative_to(self.root.resolve()).as_posix()
