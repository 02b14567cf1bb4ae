"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note text format.

A checkpoint is the text

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, base64>\\n
    time <UTC instant>\\n

followed by a blank line and one signature line

    \\u2014 <origin> <base64(key hash (4 bytes) || Ed25519 signature (64 bytes))>\\n

The signature covers the text above the blank line, its final newline included. The key hash is
the first 4 bytes of SHA-256(origin || "\\n" || 0x01 || public key), as in Go's sumdb note package.
The origin names the log and its key: ``carnet.audit/<first 8 bytes of SHA-256(public key), hex>``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from hashlib import sha256
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNATURE_PREFIX = "\u2014 "
ED25519_ALG = b"\x01"


class Signer(Protocol):
    """What the audit log needs from the crypto domain: sign bytes, tell the public key."""

    def sign(self, data: bytes) -> bytes: ...

    def public_key_bytes(self) -> bytes: ...


class NoteError(ValueError):
    """A checkpoint that does not parse or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    time: str
    note: str  # the signed note, verbatim

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode()


def origin_for(public_key: bytes) -> str:
    return f"carnet.audit/{sha256(public_key).hexdigest()[:16]}"


def key_hash(name: str, public_key: bytes) -> bytes:
    return sha256(name.encode() + b"\n" + ED25519_ALG + public_key).digest()[:4]


def note_text(origin: str, size: int, root: bytes, time: str) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\ntime {time}\n"


def sign(signer: Signer, size: int, root: bytes, time: str) -> Checkpoint:
    public = signer.public_key_bytes()
    origin = origin_for(public)
    text = note_text(origin, size, root, time)
    sig = base64.b64encode(key_hash(origin, public) + signer.sign(text.encode())).decode()
    return Checkpoint(origin, size, root, time, f"{text}\n{SIGNATURE_PREFIX}{origin} {sig}\n")


def open_note(note: str, public_key: bytes) -> Checkpoint:
    """Parse a checkpoint and check its signature by ``public_key``; raise NoteError otherwise."""
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise NoteError("checkpoint has no signature block")
    text += "\n"
    lines = text.split("\n")
    if len(lines) < 5 or not lines[3].startswith("time "):
        raise NoteError("checkpoint body is not origin, size, root, time")
    origin, size_text, root_text, time = lines[0], lines[1], lines[2], lines[3][5:]
    if origin != origin_for(public_key):
        raise NoteError("checkpoint origin does not name this log's key")
    if not size_text.isdigit():
        raise NoteError("checkpoint tree size is not a number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise NoteError("checkpoint root is not base64") from None
    if len(root) != 32:
        raise NoteError("checkpoint root is not a SHA-256 hash")
    expected = key_hash(origin, public_key)
    verifier = Ed25519PublicKey.from_public_bytes(public_key)
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("malformed signature line")
        name, _, sig_text = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(sig_text, validate=True)
        except binascii.Error:
            raise NoteError("signature is not base64") from None
        if name != origin or raw[:4] != expected:
            continue
        try:
            verifier.verify(raw[4:], text.encode())
        except InvalidSignature:
            raise NoteError("checkpoint signature does not verify") from None
        return Checkpoint(origin, int(size_text), root, time, note)
    raise NoteError("checkpoint carries no signature by this log's key")
