"""Envelope encryption: per-owner AES-256-GCM data keys wrapped by the master key's current
wrapping-key version (its id stored beside each wrapped key, so a rotation can rewrap them online).

The owner of a resource is its patient compartment ("patient:<id>") or "shared" for resources
outside any patient compartment. Destroying an owner's data key makes every body and blob
encrypted under it unreadable, in the database and in every backup (crypto-shredding).
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carnet.crypto.keyring import Keyring, UnknownWrappingKeyError
from carnet.crypto.models import data_key
from carnet.db.engine import UNIT_SCOPED_INFO
from carnet.db.instants import utc_now

SHARED_OWNER = "shared"
# Unit-scoped connection info: the engine's pool also drops it at check-in (carnet.db.engine).
_UNIT_KEYS = UNIT_SCOPED_INFO + "data_keys"


class KeyDestroyedError(RuntimeError):
    """The data key of this owner was destroyed: its data is gone for good."""


class DecryptionError(RuntimeError):
    """A ciphertext did not authenticate: tampered, moved to another row, or the wrong master key."""


class DataKeys:
    """Creates, uses and destroys per-owner data keys.

    The database is the source of truth for every transaction: a unit reads the wrapped key of each
    owner it touches (once per unit), so a key destroyed by another process is refused by the
    next transaction here. Only the unwrapping is memoised, by wrapped value.
    """

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._unwrapped: dict[bytes, AESGCM] = {}

    @staticmethod
    def owner_for(patient_id: str | None) -> str:
        return f"patient:{patient_id}" if patient_id else SHARED_OWNER

    @staticmethod
    def _unit_keys(conn: Connection) -> dict[str, AESGCM | None]:
        keys: dict[str, AESGCM | None] = conn.info.setdefault(_UNIT_KEYS, {})
        return keys

    def _unwrap(self, owner: str, key_id: str, wrapped: bytes) -> AESGCM:
        aead = self._unwrapped.get(wrapped)
        if aead is None:
            aead = AESGCM(self.keyring.unwrap(wrapped, owner, key_id))
            self._unwrapped[wrapped] = aead
        return aead

    def prefetch(self, conn: Connection, owners: set[str]) -> None:
        """Read the wrapped keys of many owners in one statement (search results)."""
        keys = self._unit_keys(conn)
        missing = [o for o in owners if o not in keys]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = conn.execute(
                select(data_key.c.owner, data_key.c.master_key_id, data_key.c.wrapped).where(
                    data_key.c.owner.in_(chunk)
                )
            )
            for row in rows:
                keys[row.owner] = (
                    None
                    if row.wrapped is None
                    else self._unwrap(row.owner, row.master_key_id, row.wrapped)
                )

    def _aead(self, conn: Connection, owner: str, *, create: bool) -> AESGCM:
        keys = self._unit_keys(conn)
        if owner in keys:
            found = keys[owner]
            if found is None:
                raise KeyDestroyedError(f"data key of {owner} was destroyed")
            return found
        wanted = select(data_key.c.master_key_id, data_key.c.wrapped).where(
            data_key.c.owner == owner
        )
        row = conn.execute(wanted).first()
        if row is None:
            if not create:
                raise KeyDestroyedError(f"no data key for owner {owner}")
            key = AESGCM.generate_key(bit_length=256)
            # Two server processes may create the same owner's key at once (the first resources
            # of a new patient, or of the shared owner): the first insert wins, and everyone
            # uses the key that was stored (PostgreSQL's insert waits for the winner to commit).
            dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            wrapped = self.keyring.wrap(key, owner)
            conn.execute(
                dialect_insert(data_key)
                .values(
                    owner=owner,
                    master_key_id=wrapped.key_id,
                    wrapped=wrapped.wrapped,
                    created_at=utc_now(),
                )
                .on_conflict_do_nothing(index_elements=["owner"])
            )
            row = conn.execute(wanted).first()
            if row is None:
                raise KeyDestroyedError(f"no data key for owner {owner}")
        if row.wrapped is None:
            keys[owner] = None
            raise KeyDestroyedError(f"data key of {owner} was destroyed")
        aead = self._unwrap(owner, row.master_key_id, row.wrapped)
        keys[owner] = aead
        return aead

    def encrypt(self, conn: Connection, owner: str, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead(conn, owner, create=True).encrypt(nonce, plaintext, aad)

    def decrypt(self, conn: Connection, owner: str, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead(conn, owner, create=False).decrypt(blob[:12], blob[12:], aad)
        except (InvalidTag, UnknownWrappingKeyError) as exc:
            raise DecryptionError(f"ciphertext of {owner} does not authenticate") from exc

    def destroy(self, conn: Connection, owner: str) -> bool:
        """Crypto-shred: forget the wrapped key. Returns False if there was none."""
        row = conn.execute(select(data_key.c.wrapped).where(data_key.c.owner == owner)).first()
        if row is not None and row.wrapped is not None:
            self._unwrapped.pop(row.wrapped, None)
        self._unit_keys(conn)[owner] = None
        result = conn.execute(
            update(data_key)
            .where(data_key.c.owner == owner, data_key.c.wrapped.is_not(None))
            .values(wrapped=None, destroyed_at=utc_now())
        )
        return result.rowcount > 0

    def after_commit(self, conn: Connection) -> None:
        """End of a unit: the next one reads keys from the database again."""
        conn.info.pop(_UNIT_KEYS, None)

    def after_rollback(self, conn: Connection) -> None:
        """Keys created in a rolled-back transaction never existed."""
        conn.info.pop(_UNIT_KEYS, None)
