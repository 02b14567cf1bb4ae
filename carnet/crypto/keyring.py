"""The master key: a derivation root and versioned wrapping keys, behind an interface so an HSM
can replace the key files.

Two roles, kept apart so that one can rotate without the other:
- the **derivation root** derives the keys that must stay stable (blind indexes, audit signing,
  token signing, backups): it never rotates unless explicitly re-keyed, or every blind index breaks;
- the **wrapping keys**, one per version, wrap the per-owner data keys and the per-project
  pseudonym keys. Each wrapped key is stored beside the id of the version that wrapped it, so
  reads work with old and new versions while `carnet keys rotate` rewraps (bodies stay as they are).

Version 1 of a file keyring is the legacy master key itself (stores made before rotation existed
wrapped with it); later versions live in files beside it (``<key_file>.wrap-v<N>``). Retiring
version 1 marks it unusable for unwrapping (its bytes remain: they are the derivation root);
retiring a later version deletes its file. A file keyring keeps 32 random bytes per file,
readable by its owner only.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
_NONCE_BYTES = 12
_VERSIONS_TTL_SECONDS = 1.0


class KeyringError(RuntimeError):
    """The master key is missing, unreadable or badly protected."""


class UnknownWrappingKeyError(KeyringError):
    """A key was wrapped by a wrapping-key version this keyring does not hold (or retired)."""


@dataclass(frozen=True)
class WrappedKey:
    """A wrapped key with the id of the wrapping-key version that wrapped it."""

    key_id: str
    wrapped: bytes


@dataclass(frozen=True)
class WrappingVersion:
    """One version of the wrapping key: its number, its id, and whether it is retired."""

    version: int
    key_id: str
    retired: bool


def version_key_id(root_id: str, version: int) -> str:
    """The id stored beside keys wrapped by ``version`` (version 1 keeps the root's fingerprint,
    the id every store made before rotation already holds)."""
    return root_id if version == 1 else f"{root_id}.v{version}"


def version_of(root_id: str, key_id: str) -> int | None:
    """The version number of a wrapping-key id, or None when it is not one of this root's."""
    if key_id == root_id:
        return 1
    prefix = root_id + ".v"
    if key_id.startswith(prefix) and key_id[len(prefix) :].isdigit():
        return int(key_id[len(prefix) :])
    return None


class Keyring(Protocol):
    """What Carnet needs from a master-key holder (file, HSM, KMS)."""

    @property
    def key_id(self) -> str:
        """Fingerprint of the derivation root: stable across wrapping-key rotations."""
        ...

    @property
    def wrapping_key_id(self) -> str:
        """Id of the current wrapping-key version (the one ``wrap`` uses)."""
        ...

    def wrap(self, data_key: bytes, owner: str) -> WrappedKey: ...

    def unwrap(self, wrapped: bytes, owner: str, key_id: str) -> bytes: ...

    def derive(self, purpose: str) -> bytes: ...

    def versions(self) -> list[WrappingVersion]: ...

    def add_version(self) -> WrappingVersion: ...

    def retire(self, version: int) -> None: ...


def _write_new_key_file(path: Path) -> bool:
    """Write 32 random bytes to a new 0600 file; False if another process made it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(KEY_BYTES))
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _read_key_file(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyringError(f"master key file {path} is readable by others (mode {mode:o})")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyringError(f"master key file {path} does not hold a {KEY_BYTES}-byte key")
    return key


class FileKeyring:
    """Master key in 0600 files: the root (``path``) and later wrapping versions beside it."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not path.exists():
            if not create:
                raise KeyringError(f"master key file not found: {path}")
            _write_new_key_file(path)
        self._root = _read_key_file(path)
        self._key_id = sha256(b"carnet-key-id" + self._root).hexdigest()[:16]
        self._lock = threading.Lock()
        self._aeads: dict[int, AESGCM] = {}
        self._current_read: tuple[float, WrappingVersion | None] = (0.0, None)

    # -- versions on disk ---------------------------------------------------------------------------

    def _version_file(self, version: int) -> Path:
        return self.path.with_name(f"{self.path.name}.wrap-v{version}")

    def _retired_marker(self) -> Path:
        return self.path.with_name(f"{self.path.name}.wrap-v1.retired")

    def versions(self) -> list[WrappingVersion]:
        """Every wrapping-key version, oldest first (read from disk: another process may have
        rotated since this one started)."""
        pattern = re.compile(re.escape(self.path.name) + r"\.wrap-v(\d+)$")
        found = [
            int(match.group(1))
            for child in self.path.parent.iterdir()
            if (match := pattern.match(child.name)) and int(match.group(1)) > 1
        ]
        listed = [WrappingVersion(1, self._key_id, self._retired_marker().exists())]
        listed += [
            WrappingVersion(v, version_key_id(self._key_id, v), False) for v in sorted(found)
        ]
        return listed

    def _current(self) -> WrappingVersion:
        # Read from disk at most once a second: another process may rotate, and
        # `carnet keys rotate` rewraps until no key is left under an older version.
        read_at, cached = self._current_read
        if cached is not None and time.monotonic() - read_at < _VERSIONS_TTL_SECONDS:
            return cached
        usable = [v for v in self.versions() if not v.retired]
        if not usable:
            raise KeyringError(f"every wrapping key beside {self.path} is retired")
        self._current_read = (time.monotonic(), usable[-1])
        return usable[-1]

    def _aead(self, version: int) -> AESGCM:
        with self._lock:
            aead = self._aeads.get(version)
        if aead is not None:
            return aead
        if version == 1:
            if self._retired_marker().exists():
                raise UnknownWrappingKeyError("wrapping key version 1 is retired")
            key = self._root
        else:
            file = self._version_file(version)
            if not file.exists():
                raise UnknownWrappingKeyError(
                    f"no wrapping key version {version} beside {self.path}"
                )
            key = _read_key_file(file)
        aead = AESGCM(key)
        with self._lock:
            self._aeads[version] = aead
        return aead

    def add_version(self) -> WrappingVersion:
        """A new random wrapping key, which becomes the current one."""
        while True:
            version = self.versions()[-1].version + 1
            if _write_new_key_file(self._version_file(version)):
                self._current_read = (0.0, None)
                return WrappingVersion(version, version_key_id(self._key_id, version), False)

    def retire(self, version: int) -> None:
        """Make ``version`` unusable (callers check first that nothing is wrapped by it)."""
        if version == self._current().version:
            raise KeyringError("the current wrapping key cannot be retired")
        with self._lock:
            self._aeads.pop(version, None)
        self._current_read = (0.0, None)
        if version == 1:
            self._retired_marker().touch(mode=0o600)
            return
        file = self._version_file(version)
        if file.exists():
            with file.open("r+b") as handle:  # overwrite before unlinking (best effort on SSDs)
                handle.write(secrets.token_bytes(KEY_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
            file.unlink()

    # -- use ----------------------------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        # A fingerprint, not the key: lets an operator see which key wrapped what.
        return self._key_id

    @property
    def wrapping_key_id(self) -> str:
        return self._current().key_id

    def wrap(self, data_key: bytes, owner: str) -> WrappedKey:
        current = self._current()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead(current.version).encrypt(nonce, data_key, owner.encode())
        return WrappedKey(current.key_id, nonce + sealed)

    def unwrap(self, wrapped: bytes, owner: str, key_id: str) -> bytes:
        version = version_of(self._key_id, key_id)
        if version is None:  # another master key's: as if it did not authenticate
            raise InvalidTag()
        aead = self._aead(version)
        return aead.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], owner.encode())

    def derive(self, purpose: str) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        return hkdf.derive(self._root)

    def file_mode(self) -> int:
        return stat.S_IMODE(self.path.stat().st_mode)
