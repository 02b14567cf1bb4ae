"""Attachment content: encrypted, content-addressed blobs outside the database.

Binary.data and Attachment.data are moved out of the resource body into the blob store on write and
put back on read. A blob is encrypted under its patient's data key, so crypto-shredding a patient
erases their attachments too. Its name is a keyed hash of (owner, SHA-256 of the content): the same
document deposited twice for one patient is stored once, and names reveal nothing about content.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from carnet.crypto.blind_index import BlindIndexer
from carnet.crypto.envelope import DataKeys, DecryptionError, KeyDestroyedError
from carnet.fhir.errors import Issue, unprocessable
from carnet.private_files import private_dir, write_private_bytes

BLOB_MARKER = "_carnetBlob"  # internal key in stored bodies; never leaves the repository
# Raw Binary content is the depositor's bytes (HTML, SVG, a PDF with scripts): a browser must
# download it, never render it in Carnet's origin.
BINARY_RESPONSE_HEADERS: dict[str, str] = {
    "Content-Disposition": "attachment",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}

_MAGIC: dict[str, tuple[tuple[int, bytes], ...]] = {
    "application/pdf": ((0, b"%PDF-"),),
    "image/png": ((0, b"\x89PNG\r\n\x1a\n"),),
    "image/jpeg": ((0, b"\xff\xd8\xff"),),
    "image/gif": ((0, b"GIF87a"), (0, b"GIF89a")),
    "application/dicom": ((128, b"DICM"),),
    "application/zip": ((0, b"PK\x03\x04"),),
}


def content_matches(content_type: str, data: bytes) -> bool:
    """Whether ``data`` looks like ``content_type``; types we cannot recognise are accepted."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in _MAGIC:
        return any(data[offset : offset + len(sig)] == sig for offset, sig in _MAGIC[mime])
    if mime.startswith("text/") or mime in ("application/json", "application/fhir+json"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    if mime.endswith("xml"):  # CDA documents among them
        return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
    return True


def attachments(
    resource_type: str, resource: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (location, node) that carries inline content: Binary, and Attachment-shaped elements."""
    if resource_type == "Binary":
        yield "Binary", resource
        return
    stack: list[tuple[str, Any]] = [(resource_type, resource)]
    while stack:
        location, node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "origin" not in node:  # not SampledData
                yield location, node
            for key, value in node.items():
                if key != "contained":
                    stack.append((f"{location}.{key}", value))
        elif isinstance(node, list):
            stack.extend((f"{location}[{i}]", item) for i, item in enumerate(node))


class BlobStore:
    """Filesystem blob store; the only place attachment bytes are written."""

    def __init__(
        self, root: Path, data_keys: DataKeys, blind: BlindIndexer, max_bytes: int
    ) -> None:
        self.root = root
        self.data_keys = data_keys
        self.blind = blind
        self.max_bytes = max_bytes

    def _path(self, owner: str, digest: str) -> Path:
        name = self.blind.digest("blob", f"{owner}:{digest}")
        return self.root / name[:2] / name

    def extract(
        self, conn: Connection, owner: str, resource_type: str, resource: dict[str, Any]
    ) -> list[int]:
        """Move inline content into the store, in place; raises 422 on bad content.

        Returns the size of each attachment, in the order ``attachments`` visits them.
        """
        sizes: list[int] = []
        for location, node in list(attachments(resource_type, resource)):
            raw = node.pop("data")
            try:
                # base64Binary may be wrapped with whitespace (the R4 datatype allows it).
                data = base64.b64decode("".join(raw.split()), validate=True)
            except (binascii.Error, ValueError):
                raise unprocessable(
                    [Issue("value", "data is not valid base64", f"{location}.data")]
                ) from None
            if len(data) > self.max_bytes:
                raise unprocessable(
                    [
                        Issue(
                            "too-long",
                            f"attachment of {len(data)} bytes exceeds {self.max_bytes}",
                            f"{location}.data",
                        )
                    ]
                )
            content_type = str(node.get("contentType", ""))
            if not content_matches(content_type, data):
                raise unprocessable(
                    [
                        Issue(
                            "value",
                            f"content does not match declared contentType {content_type}",
                            f"{location}.contentType",
                        )
                    ]
                )
            digest = hashlib.sha256(data).hexdigest()
            path = self._path(owner, digest)
            if path.exists() and not self._readable(conn, owner, digest, path):
                # Sealed under a key this database does not hold (a blob directory reused with
                # another database): identical content is stored afresh, never left unreadable.
                path.unlink()
            if not path.exists():
                private_dir(path.parent)
                sealed = self.data_keys.encrypt(conn, owner, data, aad=digest.encode())
                tmp = path.with_suffix(".tmp")
                try:
                    write_private_bytes(tmp, sealed)
                    tmp.replace(path)  # atomic: a crash never leaves half a blob under its name
                except OSError:  # a full or read-only disk: no half-written file stays behind
                    with contextlib.suppress(OSError):
                        tmp.unlink(missing_ok=True)
                    raise
            if resource_type != "Binary":
                node.setdefault("size", len(data))
            node[BLOB_MARKER] = digest
            sizes.append(len(data))
        return sizes

    def _readable(self, conn: Connection, owner: str, digest: str, path: Path) -> bool:
        try:
            self.data_keys.decrypt(conn, owner, path.read_bytes(), aad=digest.encode())
        except (DecryptionError, KeyDestroyedError):  # no such key here, or another key
            return False
        return True

    def inflate(
        self, conn: Connection, owner: str, resource_type: str, resource: dict[str, Any]
    ) -> None:
        """Put content back into a body read from the database, in place."""
        stack: list[Any] = [resource]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                digest = node.pop(BLOB_MARKER, None)
                if digest is not None:
                    data = self.read(conn, owner, digest)
                    node["data"] = base64.b64encode(data).decode()
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)

    def read(self, conn: Connection, owner: str, digest: str) -> bytes:
        sealed = self._path(owner, digest).read_bytes()
        return self.data_keys.decrypt(conn, owner, sealed, aad=digest.encode())


def strip_blob_markers(resource: dict[str, Any]) -> None:
    """Take the internal blob references out of a body read without its attachments' data, in
    place: what remains (content type, title, size, hash) is the attachment's metadata."""
    stack: list[Any] = [resource]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            node.pop(BLOB_MARKER, None)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
