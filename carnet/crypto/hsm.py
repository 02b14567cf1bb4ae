"""The master key in an HSM, through PKCS#11 (python-pkcs11): it never leaves the token.

Two keys live on the token under one label: an AES-256 key that wraps data keys (AES-GCM on the
token, the owner as associated data, the same format as the file keyring's) and an HMAC-SHA256
secret from which the other keys are derived (``derive``: HMAC of the purpose on the token). Both
are created sensitive and non-extractable on first use. Tested against Debian's SoftHSM2.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.exceptions import InvalidTag
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag
from pkcs11.exceptions import NoSuchKey, PKCS11Error
from pkcs11.mechanisms import GCMParams

from carnet.crypto.keyring import KeyringError

_NONCE_BYTES = 12
_DERIVE_SUFFIX = "-derive"


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
        self._wrapping = self._key(
            KeyType.AES, key_label, create, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
        )
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

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, data_key: bytes, owner: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        with self._lock:
            sealed: bytes = self._wrapping.encrypt(
                data_key,
                mechanism=Mechanism.AES_GCM,
                mechanism_param=GCMParams(nonce, owner.encode(), 128),
            )
        return nonce + sealed

    def unwrap(self, wrapped: bytes, owner: str) -> bytes:
        nonce, sealed = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        try:
            with self._lock:
                plain: bytes = self._wrapping.decrypt(
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
            for key in (self._wrapping, self._deriving)
        )
