"""The custody report (`carnet keys custody`): every key Carnet uses, where it lives, who can use
it, and when it last changed or rotated. Key material never appears in it: fingerprints and counts
only."""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from carnet.crypto.keyring import FileKeyring, Keyring
from carnet.crypto.models import data_key, key_rotation, project_key


@dataclass(frozen=True)
class Custody:
    """One key: what it is, where it lives, who can use it, when it last changed."""

    key: str
    where: str
    who: str
    changed: str


def _file_owner_and_time(file: Path) -> tuple[str, str]:
    if not file.exists():
        return "nobody yet (not created)", "never"
    info = file.stat()
    owner = pwd.getpwuid(info.st_uid).pw_name
    when = datetime.fromtimestamp(info.st_mtime, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"the system user {owner} (mode {info.st_mode & 0o777:o})", when


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "never"


def _rotations(engine: Engine) -> dict[str, datetime]:
    """When each wrapping-key id became current (the end of the rotation to it)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(key_rotation.c.target_key_id, key_rotation.c.finished_at).where(
                key_rotation.c.target_key_id.is_not(None), key_rotation.c.finished_at.is_not(None)
            )
        )
        return {str(row.target_key_id): row.finished_at for row in rows}


def _wrapping_rows(keyring: Keyring, engine: Engine) -> list[Custody]:
    rotated = _rotations(engine)
    current = keyring.wrapping_key_id
    rows: list[Custody] = []
    for version in keyring.versions():
        state = (
            "retired" if version.retired else ("current" if version.key_id == current else "old")
        )
        where = (
            f"file {keyring.path if version.version == 1 else keyring.path.name + '.wrap-v' + str(version.version)}"
            if isinstance(keyring, FileKeyring)
            else "the HSM token, non-extractable"
        )
        changed = (
            f"rotated in {_when(rotated[version.key_id])}"
            if version.key_id in rotated
            else "created with the store"
        )
        rows.append(
            Custody(
                f"wrapping key v{version.version} {version.key_id} ({state})",
                where,
                "this Carnet process, to wrap and unwrap data and pseudonym keys",
                changed,
            )
        )
    return rows


def _project_rows(engine: Engine) -> list[Custody]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                project_key.c.project_id,
                project_key.c.generation,
                project_key.c.master_key_id,
                project_key.c.created_at,
                project_key.c.rotate_after_days,
            ).order_by(project_key.c.project_id)
        ).all()
    return [
        Custody(
            f"pseudonym key of project {row.project_id} (generation {row.generation})",
            f"database table project_key, wrapped by {row.master_key_id}",
            "Carnet's extraction, for that project's pseudonyms only",
            f"re-keyed {_when(row.created_at)}"
            + (f", every {row.rotate_after_days} days" if row.rotate_after_days else ", on demand"),
        )
        for row in rows
    ]


def custody(keyring: Keyring, engine: Engine, rsa_key_file: Path) -> list[Custody]:
    """The custody report of this store's keys."""
    rows: list[Custody] = []
    if isinstance(keyring, FileKeyring):
        who, when = _file_owner_and_time(keyring.path)
        rows.append(
            Custody(
                f"master key (derivation root) {keyring.key_id}",
                f"file {keyring.path}",
                who,
                f"{when}; never rotates (blind indexes depend on it)",
            )
        )
    else:
        # python-pkcs11 is imported only where the keyring is not the file one
        from carnet.crypto.hsm import Pkcs11Keyring

        if isinstance(keyring, Pkcs11Keyring):
            rows.append(
                Custody(
                    f"master key {keyring.key_id}",
                    f"HSM token {keyring.token_label}, keys {keyring.key_label}(-derive), "
                    f"{'EXTRACTABLE' if keyring.extractable() else 'non-extractable'}",
                    "holders of the token's user PIN, through the token only",
                    "on the token (see the HSM's own log)",
                )
            )
    derived = "derived from the master key when needed, never stored"
    for purpose in ("blind-index", "audit-signing", "token-signing", "backup"):
        rows.append(
            Custody(f"{purpose} key", derived, "this Carnet process", "with the master key")
        )
    rows += _wrapping_rows(keyring, engine)
    with engine.connect() as conn:
        by_master: list[tuple[str, int]] = [
            (str(master_key_id), int(count))
            for master_key_id, count in conn.execute(
                select(data_key.c.master_key_id, func.count())
                .where(data_key.c.wrapped.is_not(None))
                .group_by(data_key.c.master_key_id)
            )
        ]
        destroyed = conn.execute(
            select(func.count()).select_from(data_key).where(data_key.c.wrapped.is_(None))
        ).scalar_one()
        latest = conn.execute(select(func.max(data_key.c.created_at))).scalar_one()
    for master_key_id, count in by_master or [(keyring.key_id, 0)]:
        rows.append(
            Custody(
                f"data keys ({count} active, wrapped by wrapping key {master_key_id})",
                "database table data_key, wrapped; escrowed on backup targets under the backup key",
                "Carnet, per patient, for that patient's bodies and blobs",
                f"newest created {latest.strftime('%Y-%m-%dT%H:%M:%SZ') if latest else 'never'}",
            )
        )
    rows.append(
        Custody(
            f"destroyed data keys ({destroyed})",
            "nowhere: crypto-shredded, and their backup escrow deleted at the next backup",
            "nobody",
            "-",
        )
    )
    rows += _project_rows(engine)
    who, when = _file_owner_and_time(rsa_key_file)
    rows.append(
        Custody(
            "ID-token signing key (RSA)",
            f"file {rsa_key_file}, wrapped by the current wrapping key",
            who,
            when,
        )
    )
    return rows
