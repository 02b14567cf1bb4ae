"""The master key in an HSM, through PKCS#11 (python-pkcs11): it never leaves the token.

Keys live on the token under one label: AES-256 wrapping keys, one per version, that wrap data
keys (AES-GCM on the token, the owner as associated data, the same format as the file keyring's;
version 1 is labelled ``<label>``, later ones ``<label>-wrap-v<N>``), and an HMAC-SHA256 secret,
the derivation root, from which the other keys are derived (``derive``: HMAC of the purpose on the
token), which rotation never touches. All are created sensitive and non-extractable; retiring a
wrapping version destroys it on the token. Tested against Debian's SoftHSM2.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.exceptions import InvalidTag
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import NoSuchKey, PKCS11Error
from pkcs11.mechanisms import GCMParams

from carnet.crypto.keyring import (
    KeyringError,
    UnknownWrappingKeyError,
    WrappedKey,
    WrappingVersion,
    version_key_id,
    version_of,
)

_NONCE_BYTES = 12
_DERIVE_SUFFIX = "-derive"
_VERSION_SUFFIX = "-wrap-v"
_LABELS_TTL_SECONDS = 1.0


# PKCS#11 logs an application in once per token: every keyring of this process on one token
# shares the session that logged in, and a keyring given another PIN is refused.
_SESSIONS: dict[tuple[str, str], tuple[Any, threading.Lock, bytes]] = {}
_SESSIONS_LOCK = threading.Lock()


def _logged_in_session(module: Path, token_label: str, pin: str) -> tuple[Any, threading.Lock]:
    pin_digest = hashlib.sha256(b"carnet-hsm-pin:" + pin.encode()).digest()
    with _SESSIONS_LOCK:
        found = _SESSIONS.get((str(module), token_label))
        if found is not None:
            session, lock, digest = found
            if not hmac.compare_digest(digest, pin_digest):
                raise KeyringError(f"cannot open HSM token {token_label!r}: PinIncorrect")
            return session, lock
        try:
            token = pkcs11.lib(str(module)).get_token(token_label=token_label)
            session = token.open(user_pin=pin, rw=True)
        except (PKCS11Error, RuntimeError, OSError) as exc:
            raise KeyringError(
                f"cannot open HSM token {token_label!r} with {module.name}: {type(exc).__name__}"
            ) from None
        lock = threading.Lock()
        _SESSIONS[(str(module), token_label)] = (session, lock, pin_digest)
        return session, lock


class Pkcs11Keyring:
    """Master key on a PKCS#11 token; one session per process, used under a lock."""

    def __init__(
        self, module: Path, token_label: str, pin: str, key_label: str, *, create: bool = True
    ) -> None:
        self._session, self._lock = _logged_in_session(module, token_label, pin)
        self.token_label = token_label
        self.key_label = key_label
        self._wrapping: dict[int, Any] = {}
        self._labels_read: tuple[float, dict[int, str]] = (0.0, {})
        if not self._version_labels(fresh=True):
            # A new token (or one made before versions): version 1 is the key named by the label.
            self._wrapping[1] = self._key(
                KeyType.AES, key_label, create, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
            )
            self._labels_read = (0.0, {})
        self._deriving = self._key(
            KeyType.GENERIC_SECRET, key_label + _DERIVE_SUFFIX, create, MechanismFlag.SIGN
        )
        self._key_id = self.derive("carnet-key-id").hex()[:16]

    def _key(self, key_type: KeyType, label: str, create: bool, capabilities: MechanismFlag) -> Any:
        try:
            return self._session.get_key(key_type=key_type, label=label)
        except NoSuchKey:
            if not create:
                raise KeyringError(f"no key {label!r} on HSM token {self.token_label!r}") from None
        return self._session.generate_key(
            key_type,
            256,
            label=label,
            store=True,
            capabilities=capabilities,
            template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
        )

    def _version_labels(self, *, fresh: bool = False) -> dict[int, str]:
        """The wrapping versions on the token, read from it at most once a second (another
        process may have rotated; `carnet keys rotate` rewraps until none is left behind)."""
        read_at, cached = self._labels_read
        if not fresh and time.monotonic() - read_at < _LABELS_TTL_SECONDS:
            return cached
        pattern = re.compile(re.escape(self.key_label) + "(?:" + _VERSION_SUFFIX + r"(\d+))?$")
        labels: dict[int, str] = {}
        with self._lock:
            found = list(
                self._session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES}
                )
            )
            for key in found:
                match = pattern.match(str(key.label))
                if match:
                    labels[int(match.group(1) or 1)] = str(key.label)
        self._labels_read = (time.monotonic(), labels)
        return labels

    def _version_key(self, version: int) -> Any:
        key = self._wrapping.get(version)
        if key is not None:
            return key
        label = self.key_label if version == 1 else f"{self.key_label}{_VERSION_SUFFIX}{version}"
        try:
            with self._lock:
                key = self._session.get_key(key_type=KeyType.AES, label=label)
        except NoSuchKey:
            raise UnknownWrappingKeyError(
                f"no wrapping key version {version} on HSM token {self.token_label!r}"
            ) from None
        self._wrapping[version] = key
        return key

    def versions(self) -> list[WrappingVersion]:
        """Wrapping versions on the token, oldest first (retired ones are destroyed, so absent)."""
        return [
            WrappingVersion(v, version_key_id(self._key_id, v), False)
            for v in sorted(self._version_labels(fresh=True))
        ]

    def add_version(self) -> WrappingVersion:
        """A new wrapping key generated on the token; it becomes the current one."""
        version = max(self._version_labels(fresh=True), default=0) + 1
        label = self.key_label if version == 1 else f"{self.key_label}{_VERSION_SUFFIX}{version}"
        self._wrapping[version] = self._key(
            KeyType.AES, label, True, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
        )
        self._labels_read = (0.0, {})
        return WrappingVersion(version, version_key_id(self._key_id, version), False)

    def retire(self, version: int) -> None:
        """Destroy a wrapping version on the token (callers check nothing is wrapped by it)."""
        labels = self._version_labels(fresh=True)
        if version == max(labels, default=0):
            raise KeyringError("the current wrapping key cannot be retired")
        if version not in labels:
            return
        key = self._version_key(version)
        with self._lock:
            key.destroy()
        self._wrapping.pop(version, None)
        self._labels_read = (0.0, {})

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def wrapping_key_id(self) -> str:
        return version_key_id(self._key_id, max(self._version_labels()))

    def wrap(self, data_key: bytes, owner: str) -> WrappedKey:
        version = max(self._version_labels())
        key = self._version_key(version)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        with self._lock:
            sealed: bytes = key.encrypt(
                data_key,
                mechanism=Mechanism.AES_GCM,
                mechanism_param=GCMParams(nonce, owner.encode(), 128),
            )
        return WrappedKey(version_key_id(self._key_id, version), nonce + sealed)

    def unwrap(self, wrapped: bytes, owner: str, key_id: str) -> bytes:
        version = version_of(self._key_id, key_id)
        if version is None:  # another master key's: as if it did not authenticate
            raise InvalidTag()
        key = self._version_key(version)
        nonce, sealed = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        try:
            with self._lock:
                plain: bytes = key.decrypt(
                    sealed,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, owner.encode(), 128),
                )
        except PKCS11Error:  # the token's answer to a tag that does not authenticate
            raise InvalidTag() from None
        return plain

    def derive(self, purpose: str) -> bytes:
        with self._lock:
            derived: bytes = self._deriving.sign(
                b"carnet-derive:" + purpose.encode(), mechanism=Mechanism.SHA256_HMAC
            )
        return derived

    def extractable(self) -> bool:
        """Whether either key could leave the token (never, when Carnet created them)."""
        return any(
            bool(key[Attribute.EXTRACTABLE]) or not bool(key[Attribute.SENSITIVE])
            for key in (*(self._version_key(v) for v in self._version_labels()), self._deriving)
        )
