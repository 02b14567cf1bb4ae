"""Rotation of the wrapping key (`carnet keys rotate`) and retirement of old versions.

A rotation adds a new wrapping-key version, then rewraps every data key, every project pseudonym
key and the ID-token RSA key file under it; bodies are never re-encrypted, and the derivation root
(blind indexes, audit and token signing, backups) does not change. It runs online beside a live
server: batches of keys, each in its own short transaction, each key rewritten only if it is
still the one that was read (a concurrent crypto-shredding wins). Reads keep working throughout
because every wrapped key names the version that wrapped it. The rotation is logged in
``key_rotation``; an unfinished one is resumed by the next run instead of starting another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select, update

from carnet.crypto.keyring import Keyring, KeyringError, version_of
from carnet.crypto.models import data_key, key_rotation, project_key
from carnet.crypto.pseudonyms import ProjectKeys
from carnet.crypto.rsa_key import rewrap_rsa_key, rsa_key_wrapped_by
from carnet.db.engine import writing
from carnet.db.ids import time_ordered_id
from carnet.db.instants import utc_now

WRAPPING = "wrapping"
PSEUDONYMS = "pseudonyms"
DEFAULT_BATCH = 500


class RotationError(KeyringError):
    """A rotation or retirement that cannot go ahead (the message says why)."""


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did."""

    target_key_id: str
    version: int
    resumed: bool
    data_keys: int
    project_keys: int
    rsa_key_rewrapped: bool
    batches: int


@dataclass(frozen=True)
class VersionCount:
    """How many keys one wrapping-key version wraps."""

    version: int | None  # None: wrapped by a key that is not this master key's
    key_id: str
    retired: bool
    data_keys: int
    project_keys: int


def _project_owner(project_id: str, generation: int) -> str:
    return f"project:{project_id}:{generation}"


class KeyRotation:
    """Rotates the wrapping key of one store (its database and its RSA key file)."""

    def __init__(self, keyring: Keyring, engine: Engine, rsa_key_file: Path | None) -> None:
        self.keyring = keyring
        self.engine = engine
        self.rsa_key_file = rsa_key_file

    # -- rotating -----------------------------------------------------------------------------------

    def rotate(
        self,
        *,
        batch: int = DEFAULT_BATCH,
        on_batch: Callable[[int], None] | None = None,
    ) -> RotationReport:
        """Add a wrapping-key version and rewrap everything under it (or resume the unfinished
        rotation). ``on_batch`` is told the running count after each committed batch."""
        resumed = self._unfinished()
        if resumed is not None:
            rotation_id, target = resumed
            if target != self.keyring.wrapping_key_id:
                raise RotationError(
                    f"an unfinished rotation targets {target}, but the current wrapping key is "
                    f"{self.keyring.wrapping_key_id}"
                )
        else:
            target = self.keyring.add_version().key_id
            rotation_id = time_ordered_id()
            with writing(self.engine) as conn:
                conn.execute(
                    insert(key_rotation).values(
                        id=rotation_id,
                        kind=WRAPPING,
                        target_key_id=target,
                        started_at=utc_now(),
                        finished_at=None,
                        rewrapped=0,
                    )
                )
        counts = {"data": 0, "project": 0, "batches": 0}

        def progress(table: str, done: int) -> None:
            counts[table] += done
            counts["batches"] += 1
            if on_batch is not None:
                on_batch(counts["data"] + counts["project"])

        self._rewrap_all(data_key, target, batch, lambda n: progress("data", n))
        self._rewrap_all(project_key, target, batch, lambda n: progress("project", n))
        rsa = rewrap_rsa_key(self.keyring, self.rsa_key_file) if self.rsa_key_file else False
        with writing(self.engine) as conn:
            conn.execute(
                update(key_rotation)
                .where(key_rotation.c.id == rotation_id)
                .values(
                    finished_at=utc_now(),
                    rewrapped=key_rotation.c.rewrapped + counts["data"] + counts["project"],
                )
            )
        return RotationReport(
            target_key_id=target,
            version=version_of(self.keyring.key_id, target) or 0,
            resumed=resumed is not None,
            data_keys=counts["data"],
            project_keys=counts["project"],
            rsa_key_rewrapped=rsa,
            batches=counts["batches"],
        )

    def _unfinished(self) -> tuple[str, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(key_rotation.c.id, key_rotation.c.target_key_id)
                .where(key_rotation.c.kind == WRAPPING, key_rotation.c.finished_at.is_(None))
                .order_by(key_rotation.c.started_at.desc())
                .limit(1)
            ).first()
        return None if row is None else (str(row.id), str(row.target_key_id))

    def _rewrap_all(
        self, table: Table, target: str, batch: int, done: Callable[[int], None]
    ) -> None:
        # Until a pass finds nothing: a live writer that read the versions just before the new
        # one appeared may still add a key under the old one while this runs.
        while True:
            with writing(self.engine) as conn:
                seen, changed = self._rewrap_batch(conn, table, target, batch)
            if seen == 0:
                return
            done(changed)

    def _rewrap_batch(
        self, conn: Connection, table: Table, target: str, batch: int
    ) -> tuple[int, int]:
        """Rewrap up to ``batch`` keys not yet under ``target``: (read, rewritten)."""
        c = table.c
        is_data = table is data_key
        key = c.owner if is_data else c.project_id
        wanted = (
            select(key, c.master_key_id, c.wrapped, *([] if is_data else [c.generation]))
            .where(c.master_key_id != target, c.wrapped.is_not(None))
            .order_by(key)
            .limit(batch)
        )
        if conn.dialect.name == "postgresql":
            wanted = wanted.with_for_update(skip_locked=True)
        rows = conn.execute(wanted).all()
        changes: list[dict[str, object]] = []
        for row in rows:
            owner = row[0] if is_data else _project_owner(row.project_id, row.generation)
            plain = self.keyring.unwrap(row.wrapped, owner, row.master_key_id)
            wrapped = self.keyring.wrap(plain, owner)
            if wrapped.key_id != target:
                raise RotationError(
                    f"the current wrapping key changed to {wrapped.key_id} during the rotation"
                )
            changes.append(
                {
                    "k": row[0],
                    "old_id": row.master_key_id,
                    "old_wrapped": row.wrapped,
                    "new_id": wrapped.key_id,
                    "new_wrapped": wrapped.wrapped,
                }
            )
        changed = 0
        if changes:
            # Compare-and-set: a key destroyed or re-keyed meanwhile is left as it now is.
            result = conn.execute(
                update(table)
                .where(
                    key == bindparam("k"),
                    c.master_key_id == bindparam("old_id"),
                    c.wrapped == bindparam("old_wrapped"),
                )
                .values(master_key_id=bindparam("new_id"), wrapped=bindparam("new_wrapped")),
                changes,
            )
            changed = max(result.rowcount, 0)
        return len(rows), changed

    # -- retiring -----------------------------------------------------------------------------------

    def retire(self, version: int) -> None:
        """Retire a wrapping-key version once nothing is wrapped by it any more."""
        versions = {v.version: v for v in self.keyring.versions()}
        found = versions.get(version)
        if found is None or found.retired:
            raise RotationError(f"there is no usable wrapping key version {version}")
        if found.key_id == self.keyring.wrapping_key_id:
            raise RotationError("the current wrapping key cannot be retired")
        if self._unfinished() is not None:
            raise RotationError("a rotation is unfinished: run `carnet keys rotate` first")
        still = [c for c in self.counts() if c.version == version]
        if still and (still[0].data_keys or still[0].project_keys):
            raise RotationError(
                f"version {version} still wraps {still[0].data_keys} data keys and "
                f"{still[0].project_keys} project keys: rotate first"
            )
        if self.rsa_key_file is not None and rsa_key_wrapped_by(
            self.keyring, self.rsa_key_file
        ) == (found.key_id):
            raise RotationError(f"version {version} still wraps the ID-token key: rotate first")
        self.keyring.retire(version)

    # -- reporting ----------------------------------------------------------------------------------

    def counts(self) -> list[VersionCount]:
        """Live keys per wrapping-key version (every version listed, even with none)."""
        with self.engine.connect() as conn:
            data: dict[str, int] = dict(
                conn.execute(
                    select(data_key.c.master_key_id, func.count())
                    .where(data_key.c.wrapped.is_not(None))
                    .group_by(data_key.c.master_key_id)
                ).all()
            )
            projects: dict[str, int] = dict(
                conn.execute(
                    select(project_key.c.master_key_id, func.count()).group_by(
                        project_key.c.master_key_id
                    )
                ).all()
            )
        listed = [
            VersionCount(
                v.version, v.key_id, v.retired, data.pop(v.key_id, 0), projects.pop(v.key_id, 0)
            )
            for v in self.keyring.versions()
        ]
        for key_id in sorted(set(data) | set(projects)):  # a retired HSM version, or a stranger
            listed.append(
                VersionCount(
                    version_of(self.keyring.key_id, key_id),
                    key_id,
                    True,
                    data.get(key_id, 0),
                    projects.get(key_id, 0),
                )
            )
        return listed

    def last_rotation(self, kind: str = WRAPPING) -> datetime | None:
        """When the last finished rotation of this kind ended."""
        with self.engine.connect() as conn:
            found: datetime | None = conn.execute(
                select(key_rotation.c.finished_at)
                .where(key_rotation.c.kind == kind, key_rotation.c.finished_at.is_not(None))
                .order_by(key_rotation.c.finished_at.desc())
                .limit(1)
            ).scalar()
        return found


def rekey_due_pseudonyms(project_keys: ProjectKeys, engine: Engine) -> list[tuple[str, int]]:
    """Re-key the projects whose pseudonym key is past its period, in one transaction logged in
    ``key_rotation``: extracts made afterwards get ids unrelated to the earlier ones."""
    with writing(engine) as conn:
        now = utc_now()
        done = project_keys.rekey_due(conn, now)
        conn.execute(
            insert(key_rotation).values(
                id=time_ordered_id(),
                kind=PSEUDONYMS,
                target_key_id=None,
                started_at=now,
                finished_at=utc_now(),
                rewrapped=len(done),
            )
        )
    return done
