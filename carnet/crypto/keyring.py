"""The master key: behind an interface so an HSM can replace the key file.

The master key never encrypts data directly; it wraps per-owner data keys and derives the
blind-index key. A file keyring keeps 32 random bytes in a file readable by its owner only.
"""

from __future__ import annotations

import os
import secrets
import stat
from hashlib import sha256
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32


class KeyringError(RuntimeError):
    """The master key is missing, unreadable or badly protected."""


class Keyring(Protocol):
    """What Carnet needs from a master-key holder (file, HSM, KMS)."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes, owner: str) -> bytes: ...

    def unwrap(self, wrapped: bytes, owner: str) -> bytes: ...

    def derive(self, purpose: str) -> bytes: ...


class FileKeyring:
    """Master key in a 0600 file; created on first use."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._key = self._load(create)
        self._aead = AESGCM(self._key)

    def _load(self, create: bool) -> bytes:
        if not self.path.exists():
            if not create:
                raise KeyringError(f"master key file not found: {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting at once must not each write a different key.
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return self._load(create=False)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(KEY_BYTES))
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise KeyringError(f"master key file {self.path} is readable by others (mode {mode:o})")
        key = self.path.read_bytes()
        if len(key) != KEY_BYTES:
            raise KeyringError(f"master key file {self.path} does not hold a {KEY_BYTES}-byte key")
        return key

    @property
    def key_id(self) -> str:
        # A fingerprint, not the key: lets an operator see which key wrapped what.
        return sha256(b"carnet-key-id" + self._key).hexdigest()[:16]

    def wrap(self, data_key: bytes, owner: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, data_key, owner.encode())

    def unwrap(self, wrapped: bytes, owner: str) -> bytes:
        return self._aead.decrypt(wrapped[:12], wrapped[12:], owner.encode())

    def derive(self, purpose: str) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        return hkdf.derive(self._key)

    def file_mode(self) -> int:
        return stat.S_IMODE(self.path.stat().st_mode)
