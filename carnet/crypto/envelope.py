"""Envelope encryption: per-owner AES-256-GCM data keys wrapped by the master key.

The owner of a resource is its patient compartment ("patient:<id>") or "shared" for resources
outside any patient compartment. Destroying an owner's data key makes every body and blob
encrypted under it unreadable, in the database and in every backup (crypto-shredding).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, insert, select, update

from carnet.crypto.keyring import Keyring
from carnet.crypto.models import data_key

SHARED_OWNER = "shared"
_PENDING = "carnet_pending_data_keys"


class KeyDestroyedError(RuntimeError):
    """The data key of this owner was destroyed: its data is gone for good."""


class DataKeys:
    """Creates, caches, uses and destroys per-owner data keys."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._cache: dict[str, AESGCM] = {}

    @staticmethod
    def owner_for(patient_id: str | None) -> str:
        return f"patient:{patient_id}" if patient_id else SHARED_OWNER

    def _aead(self, conn: Connection, owner: str, *, create: bool) -> AESGCM:
        cached = self._cache.get(owner) or conn.info.get(_PENDING, {}).get(owner)
        if cached is not None:
            return cached
        row = conn.execute(
            select(data_key.c.wrapped, data_key.c.destroyed_at).where(data_key.c.owner == owner)
        ).first()
        if row is None:
            if not create:
                raise KeyDestroyedError(f"no data key for owner {owner}")
            key = AESGCM.generate_key(bit_length=256)
            conn.execute(
                insert(data_key).values(
                    owner=owner,
                    master_key_id=self.keyring.key_id,
                    wrapped=self.keyring.wrap(key, owner),
                    created_at=datetime.now(UTC),
                )
            )
        elif row.wrapped is None:
            raise KeyDestroyedError(f"data key of {owner} was destroyed")
        else:
            key = self.keyring.unwrap(row.wrapped, owner)
        aead = AESGCM(key)
        if row is None:
            # Not shared until the transaction that stores the wrapped key commits.
            conn.info.setdefault(_PENDING, {})[owner] = aead
        else:
            self._cache[owner] = aead
        return aead

    def encrypt(self, conn: Connection, owner: str, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead(conn, owner, create=True).encrypt(nonce, plaintext, aad)

    def decrypt(self, conn: Connection, owner: str, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead(conn, owner, create=False).decrypt(blob[:12], blob[12:], aad)
        except InvalidTag as exc:
            raise KeyDestroyedError(f"ciphertext of {owner} does not authenticate") from exc

    def destroy(self, conn: Connection, owner: str) -> bool:
        """Crypto-shred: forget the wrapped key. Returns False if there was none."""
        self._cache.pop(owner, None)
        result = conn.execute(
            update(data_key)
            .where(data_key.c.owner == owner, data_key.c.wrapped.is_not(None))
            .values(wrapped=None, destroyed_at=datetime.now(UTC))
        )
        return result.rowcount > 0

    def forget_cache(self) -> None:
        self._cache.clear()

    def after_commit(self, conn: Connection) -> None:
        """Keys created in the committed transaction may now be shared."""
        self._cache.update(conn.info.pop(_PENDING, {}))

    def after_rollback(self, conn: Connection) -> None:
        """Keys created in a rolled-back transaction never existed."""
        conn.info.pop(_PENDING, None)
