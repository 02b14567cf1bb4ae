"""The custody report (`carnet keys custody`): every key Carnet uses, where it lives, who can use
it, and when it last changed. Key material never appears in it: fingerprints and counts only."""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from carnet.crypto.hsm import Pkcs11Keyring
from carnet.crypto.keyring import FileKeyring, Keyring
from carnet.crypto.models import data_key


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


def custody(keyring: Keyring, engine: Engine, rsa_key_file: Path) -> list[Custody]:
    """The custody report of this store's keys."""
    rows: list[Custody] = []
    if isinstance(keyring, FileKeyring):
        who, when = _file_owner_and_time(keyring.path)
        rows.append(Custody(f"master key {keyring.key_id}", f"file {keyring.path}", who, when))
    elif isinstance(keyring, Pkcs11Keyring):
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
                f"data keys ({count} active, wrapped by {master_key_id})",
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
    who, when = _file_owner_and_time(rsa_key_file)
    rows.append(
        Custody(
            "ID-token signing key (RSA)",
            f"file {rsa_key_file}, wrapped by the master key",
            who,
            when,
        )
    )
    return rows
