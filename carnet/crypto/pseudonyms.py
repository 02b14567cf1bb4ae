"""Per-project pseudonyms for research extracts: keyed hashes whose keys never leave crypto/.

As the SNDS does with the NIR, a person's pseudonym in a project is a keyed irreversible hash of
their record id; each project has its own random key (wrapped by the master key), so the same
person has unrelated ids in two projects, and a re-key makes every earlier pseudonym of that
project unlinkable to the new ones. The date shift of a person is derived from the same key, so
it is stable within a project and unrelated across projects.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from carnet.crypto.keyring import Keyring
from carnet.crypto.models import project_key
from carnet.db.instants import utc_now

PSEUDONYM_MAX = (1 << 62) - 1  # fits OMOP's bigint person_id with room to spare
SHIFT_MAX_DAYS = 182  # dates move by up to half a year either way, never by zero


class ProjectPseudonyms:
    """The pseudonym function of one project at one key generation (the key stays inside)."""

    def __init__(self, project_id: str, generation: int, key: bytes) -> None:
        self.project_id = project_id
        self.generation = generation
        self._keyed = hashlib.blake2b(key=key, digest_size=16)

    def _digest(self, kind: bytes, patient_id: str) -> bytes:
        state = self._keyed.copy()
        state.update(kind + b"\x1f" + patient_id.encode())
        return state.digest()

    def person_id(self, patient_id: str) -> int:
        """The person's id in this project: a positive 62-bit integer, never 0."""
        value = int.from_bytes(self._digest(b"person", patient_id)[:8], "big") & PSEUDONYM_MAX
        return value or 1

    def shift_days(self, patient_id: str) -> int:
        """The person's date shift in this project: non-zero, within ±SHIFT_MAX_DAYS."""
        raw = int.from_bytes(self._digest(b"shift", patient_id)[:4], "big")
        magnitude = raw % SHIFT_MAX_DAYS + 1
        return magnitude if raw & (1 << 31) else -magnitude


class ProjectKeys:
    """Creates, unwraps and replaces the per-project pseudonym keys (table ``project_key``)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    @staticmethod
    def _owner(project_id: str, generation: int) -> str:
        return f"project:{project_id}:{generation}"

    def pseudonyms(self, conn: Connection, project_id: str) -> ProjectPseudonyms:
        """The project's pseudonym function; its key is created on first use."""
        k = project_key.c
        row = conn.execute(
            select(k.generation, k.master_key_id, k.wrapped).where(k.project_id == project_id)
        ).first()
        if row is None:
            self._store(conn, project_id, 1, create=True)
            return self.pseudonyms(conn, project_id)
        key = self.keyring.unwrap(
            row.wrapped, self._owner(project_id, row.generation), row.master_key_id
        )
        return ProjectPseudonyms(project_id, row.generation, key)

    def rekey(self, conn: Connection, project_id: str) -> int:
        """Replace the project's key with a new random one; returns the new generation."""
        k = project_key.c
        row = conn.execute(select(k.generation).where(k.project_id == project_id)).first()
        generation = 1 if row is None else row.generation + 1
        self._store(conn, project_id, generation, create=row is None)
        return generation

    def _store(self, conn: Connection, project_id: str, generation: int, *, create: bool) -> None:
        key = secrets.token_bytes(32)
        wrapped = self.keyring.wrap(key, self._owner(project_id, generation))
        values = {
            "generation": generation,
            "master_key_id": wrapped.key_id,
            "wrapped": wrapped.wrapped,
            "created_at": utc_now(),
        }
        if create:
            conn.execute(insert(project_key).values(project_id=project_id, **values))
        else:
            conn.execute(
                update(project_key).where(project_key.c.project_id == project_id).values(**values)
            )

    def schedule(self, conn: Connection, project_id: str, days: int | None) -> None:
        """Re-key the project every ``days`` days (None: only on demand); its key is created if
        it has none yet."""
        if days is not None and days < 1:
            raise ValueError("a re-keying period is at least one day")
        self.pseudonyms(conn, project_id)
        conn.execute(
            update(project_key)
            .where(project_key.c.project_id == project_id)
            .values(rotate_after_days=days)
        )

    def due(self, conn: Connection, now: datetime) -> list[str]:
        """Projects whose key is older than their re-keying period."""
        k = project_key.c
        rows = conn.execute(
            select(k.project_id, k.created_at, k.rotate_after_days)
            .where(k.rotate_after_days.is_not(None))
            .order_by(k.project_id)
        )
        return [
            row.project_id
            for row in rows
            if row.created_at + timedelta(days=row.rotate_after_days) <= now
        ]

    def rekey_due(self, conn: Connection, now: datetime) -> list[tuple[str, int]]:
        """Re-key every project that is due: (project, new generation) for each."""
        return [(project, self.rekey(conn, project)) for project in self.due(conn, now)]
