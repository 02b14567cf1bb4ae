"""The backup key, and the data keys kept apart from the snapshots so crypto-shredding reaches them.

Backups are sealed with AES-256-GCM under a key derived from the master key, and their chunks are
named by a keyed hash (HMAC-SHA256), so names reveal nothing of the content yet identical chunks
are stored once. A snapshot's copy of the database holds no wrapped data key: each owner's wrapped
key is escrowed once per target, apart, and destroying an owner's key deletes its escrow from the
target at the next backup, so every snapshot ever taken of that patient becomes unreadable at once.

An escrow is named for its owner and the wrapping-key version that wrapped it (version 1 keeps
the name it had before versions existed): after a rotation, the next backup escrows each key
under its new version and deletes the old escrow, so a retired version is needed by no backup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, select, update

from carnet.crypto.keyring import Keyring, version_key_id
from carnet.crypto.models import data_key
from carnet.db.instants import utc_now


class BackupSealError(RuntimeError):
    """Sealed backup content did not authenticate: tampered, moved, or another master key."""


class BackupKeys:
    """Seals and names backup content; built from the master key, never holding it."""

    def __init__(self, keyring: Keyring) -> None:
        self._aead = AESGCM(keyring.derive("carnet/backup-encryption/v1"))
        self._names = keyring.derive("carnet/backup-names/v1")
        self.master_key_id = keyring.key_id
        newest = max((v.version for v in keyring.versions()), default=1)
        # Every wrapping-key id this root ever had, newest first: where an escrow may be.
        self.wrapping_ids = [version_key_id(keyring.key_id, v) for v in range(newest, 0, -1)]

    def name(self, content: bytes) -> str:
        """The keyed hash naming a chunk (or an owner's escrow): same content, same name."""
        return hmac.new(self._names, content, hashlib.sha256).hexdigest()

    def seal(self, plain: bytes, aad: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plain, aad.encode())

    def open(self, sealed: bytes, aad: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], aad.encode())
        except InvalidTag:
            raise BackupSealError(f"{aad} does not authenticate") from None


def escrow_name(keys: BackupKeys, owner: str, key_id: str | None = None) -> str:
    """Where an owner's key wrapped by ``key_id`` is escrowed (version 1: the historical name)."""
    if key_id is None or key_id == keys.master_key_id:
        return "keys/" + keys.name(b"owner:" + owner.encode())
    return "keys/" + keys.name(b"owner:" + owner.encode() + b"\x1f" + key_id.encode())


def _escrow_names(keys: BackupKeys, owner: str) -> list[tuple[str, str]]:
    """(wrapping-key id, escrow name) of every place an owner's key may be escrowed, newest first."""
    return [(key_id, escrow_name(keys, owner, key_id)) for key_id in keys.wrapping_ids]


def escrow_data_keys(
    conn: Connection,
    keys: BackupKeys,
    exists: Callable[[str], bool],
    put: Callable[[str, bytes], None],
    delete: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """Escrow every live wrapped key not yet escrowed on the target (deleting, with ``delete``,
    its escrow under an older wrapping version). Returns how many keys are live and the owners
    whose key was destroyed."""
    live = 0
    destroyed: list[str] = []
    query = select(data_key.c.owner, data_key.c.master_key_id, data_key.c.wrapped)
    for row in conn.execute(query):
        if row.wrapped is None:
            destroyed.append(row.owner)
            continue
        live += 1
        name = escrow_name(keys, row.owner, row.master_key_id)
        if not exists(name):
            put(name, keys.seal(row.wrapped, aad=name))
            if delete is not None:  # rewrapped since the last backup: the older escrow goes
                for _, older in _escrow_names(keys, row.owner):
                    if older != name:
                        delete(older)
    return live, destroyed


def detach_data_keys(
    conn: Connection,
    keys: BackupKeys,
    exists: Callable[[str], bool],
    put: Callable[[str, bytes], None],
    delete: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """In a snapshot's copy of the database: escrow the live keys, then clear them all from the
    copy."""
    found = escrow_data_keys(conn, keys, exists, put, delete)
    conn.execute(update(data_key).values(wrapped=None))
    return found


def forget_destroyed(
    keys: BackupKeys, owners: Iterable[str], delete: Callable[[str], None]
) -> None:
    """Crypto-shredding reaches the backups: the escrow of each destroyed owner is deleted."""
    for owner in owners:
        for _, name in _escrow_names(keys, owner):
            delete(name)


def reattach_data_keys(
    conn: Connection, keys: BackupKeys, get: Callable[[str], bytes | None]
) -> tuple[int, int]:
    """In a restored database: put back each owner's wrapped key from its escrow; an owner whose
    escrow is gone was crypto-shredded since, and is marked destroyed. Returns (restored, gone)."""
    restored = gone = 0
    rows = (
        conn.execute(select(data_key.c.owner).where(data_key.c.destroyed_at.is_(None)))
        .scalars()
        .all()
    )
    for owner in rows:
        found = next(
            (
                (key_id, name, sealed)
                for key_id, name in _escrow_names(keys, owner)
                if (sealed := get(name)) is not None
            ),
            None,
        )
        if found is None:
            conn.execute(
                update(data_key).where(data_key.c.owner == owner).values(destroyed_at=utc_now())
            )
            gone += 1
            continue
        key_id, name, sealed = found
        conn.execute(
            update(data_key)
            .where(data_key.c.owner == owner)
            .values(wrapped=keys.open(sealed, aad=name), master_key_id=key_id)
        )
        restored += 1
    return restored, gone


def destroyed_owners(conn: Connection) -> set[str]:
    """Owners whose data key was destroyed (crypto-shredded) in this database."""
    rows = conn.execute(select(data_key.c.owner).where(data_key.c.wrapped.is_(None)))
    return set(rows.scalars())


def owners_with_keys(conn: Connection, owners: Iterable[str]) -> set[str]:
    """Those of ``owners`` that still have a usable data key in this database."""
    wanted = list(owners)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(data_key.c.owner).where(
                data_key.c.owner.in_(wanted[start : start + 500]), data_key.c.wrapped.is_not(None)
            )
        )
        found.update(rows.scalars())
    return found


def data_key_rows(conn: Connection) -> list[dict[str, str | None]]:
    """The data-key table without its wrapped keys (a PostgreSQL dump leaves the table empty)."""
    rows = conn.execute(
        select(
            data_key.c.owner,
            data_key.c.master_key_id,
            data_key.c.created_at,
            data_key.c.destroyed_at,
        )
    )
    return [
        {
            "owner": row.owner,
            "master_key_id": row.master_key_id,
            "created_at": row.created_at.isoformat(),
            "destroyed_at": row.destroyed_at.isoformat() if row.destroyed_at else None,
        }
        for row in rows
    ]


def insert_data_key_rows(conn: Connection, rows: list[dict[str, str | None]]) -> None:
    """Put the data-key table of a restored PostgreSQL dump back, keys still to reattach."""
    for start in range(0, len(rows), 1000):
        conn.execute(
            data_key.insert(),
            [
                {
                    "owner": row["owner"],
                    "master_key_id": row["master_key_id"],
                    "wrapped": None,
                    "created_at": datetime.fromisoformat(str(row["created_at"])),
                    "destroyed_at": (
                        datetime.fromisoformat(row["destroyed_at"]) if row["destroyed_at"] else None
                    ),
                }
                for row in rows[start : start + 1000]
            ],
        )
