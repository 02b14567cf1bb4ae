"""Import files: which ones, their fingerprint, and their bytes read within the import limits.

A file is read in chunks and its decompressed bytes are counted as they come: past
``import_max_decompressed_bytes`` in all, past ``import_max_compression_ratio`` times the
compressed bytes consumed, or with a line (or a whole JSON file) longer than
``import_max_line_bytes``, reading stops with an ImportLimitError. A gzip bomb is thus refused
after a few MiB of output, and no line is ever held whole beyond the limit.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, cast

from carnet.settings import Settings

SUFFIXES = (".json", ".json.gz", ".ndjson", ".ndjson.gz")
CHUNK_BYTES = 1 << 16
# Below this much output the ratio is not judged: a small file cannot exhaust memory, and short
# repetitive files (a few identical lines) compress far better than real data.
RATIO_FLOOR_BYTES = 1 << 20


@dataclass(frozen=True)
class ImportLimits:
    """How much one import file may expand to (see the settings of the same names)."""

    max_decompressed_bytes: int = 8 << 30
    max_compression_ratio: float = 100.0
    max_line_bytes: int = 64 << 20

    @classmethod
    def from_settings(cls, settings: Settings) -> ImportLimits:
        return cls(
            max_decompressed_bytes=settings.import_max_decompressed_bytes,
            max_compression_ratio=settings.import_max_compression_ratio,
            max_line_bytes=settings.import_max_line_bytes,
        )


class ImportLimitError(ValueError):
    """A file went past one of the import limits; the message names the setting."""


def discover(paths: list[Path]) -> list[Path]:
    """Files to import, folders expanded, in a stable order; unknown suffixes are an error."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            )
        elif path.is_file():
            if not path.name.endswith(SUFFIXES):
                raise ValueError(f"{path}: not a .json, .json.gz, .ndjson or .ndjson.gz file")
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return found


_PATIENT_FILE = re.compile(r"Patient([._-].*)?\.(nd)?json(\.gz)?$")


def patients_first(files: list[Path]) -> list[Path]:
    """``files`` with the Patient files (``Patient.ndjson``, ``Patient.001.ndjson.gz``,
    ``Patient-x.json``) first, the order kept otherwise: an item joins an existing record
    (record_checks.py), and bulk data names its files by type, so ``Observation.ndjson`` would
    come before ``Patient.ndjson``."""
    return sorted(files, key=lambda path: _PATIENT_FILE.match(path.name) is None)


def fingerprint(path: Path) -> str:
    """A file's identity for resuming: name, size, first and last 64 KiB (not its folder)."""
    digest = hashlib.sha256(path.name.encode() + b"\0")
    size = path.stat().st_size
    digest.update(str(size).encode() + b"\0")
    with path.open("rb") as handle:
        digest.update(handle.read(65536))
        if size > 65536:
            handle.seek(max(65536, size - 65536))
            digest.update(handle.read(65536))
    return digest.hexdigest()


class LimitedReader:
    """The decompressed bytes of one import file, counted against ``limits`` as they are read."""

    def __init__(self, path: Path, limits: ImportLimits) -> None:
        self.limits = limits
        self._raw = path.open("rb")
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="rb") if path.suffix == ".gz" else None
        self._stream = cast(IO[bytes], self._gzip if self._gzip is not None else self._raw)
        self.decompressed = 0

    def __enter__(self) -> LimitedReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._gzip is not None:
            self._gzip.close()
        self._raw.close()

    def read(self, size: int = CHUNK_BYTES) -> bytes:
        """At most ``size`` decompressed bytes; empty at the end of the file."""
        chunk = self._stream.read(size)
        self.decompressed += len(chunk)
        limits = self.limits
        if self.decompressed > limits.max_decompressed_bytes:
            raise ImportLimitError(
                f"decompressed size exceeds import_max_decompressed_bytes "
                f"({limits.max_decompressed_bytes} bytes)"
            )
        if (
            self._gzip is not None
            and self.decompressed > RATIO_FLOOR_BYTES
            and self.decompressed > limits.max_compression_ratio * max(self._raw.tell(), 1)
        ):
            raise ImportLimitError(
                f"compression ratio exceeds import_max_compression_ratio "
                f"({limits.max_compression_ratio:g}): a decompression bomb?"
            )
        return chunk

    def read_document(self) -> bytes:
        """The whole file (a JSON document), if no longer than ``max_line_bytes``."""
        parts: list[bytes] = []
        size = 0
        while chunk := self.read():
            size += len(chunk)
            if size > self.limits.max_line_bytes:
                raise ImportLimitError(
                    f"the JSON file is longer than import_max_line_bytes "
                    f"({self.limits.max_line_bytes} bytes)"
                )
            parts.append(chunk)
        return b"".join(parts)

    def lines(self) -> Iterator[bytes]:
        """Lines (with their newline), each no longer than ``max_line_bytes``."""
        pending = bytearray()
        number = 0
        while chunk := self.read():
            start = 0
            while start < len(chunk):
                newline = chunk.find(b"\n", start)
                end = len(chunk) if newline < 0 else newline + 1
                pending += chunk[start:end]
                if len(pending) > self.limits.max_line_bytes:
                    raise ImportLimitError(
                        f"line {number + 1} is longer than import_max_line_bytes "
                        f"({self.limits.max_line_bytes} bytes)"
                    )
                start = end
                if newline >= 0:
                    number += 1
                    yield bytes(pending)
                    pending.clear()
        if pending:
            yield bytes(pending)
