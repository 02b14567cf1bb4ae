"""Public interface of the crypto domain: build the key holders from settings, report their status."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from carnet.crypto.backup_keys import BackupKeys
from carnet.crypto.blind_index import BlindIndexer
from carnet.crypto.custody import Custody, custody
from carnet.crypto.envelope import DataKeys
from carnet.crypto.keyring import FileKeyring, Keyring, KeyringError
from carnet.crypto.models import data_key
from carnet.crypto.pseudonyms import ProjectKeys
from carnet.crypto.rotation import (
    PSEUDONYMS,
    WRAPPING,
    KeyRotation,
    VersionCount,
    rekey_due_pseudonyms,
)
from carnet.crypto.rsa_key import load_or_create_rsa_key
from carnet.crypto.signing import Ed25519Signer
from carnet.crypto.tokens import TokenSigner
from carnet.db.instants import utc_now
from carnet.settings import Settings

RSA_KEY_FILE = "id-token-rsa.key"  # beside the data, wrapped by the master key


def open_keyring(settings: Settings, *, create: bool = True) -> Keyring:
    """The master keyring named by ``settings.key_source``."""
    if settings.key_source == "file":
        return FileKeyring(settings.key_file, create=create)
    if settings.key_source == "pkcs11":
        from carnet.crypto.hsm import Pkcs11Keyring  # only where an HSM is configured

        return Pkcs11Keyring(
            settings.hsm_module,
            settings.hsm_token_label,
            settings.hsm_pin,
            settings.hsm_key_label,
            create=create,
        )
    raise KeyringError(f"unknown key source {settings.key_source!r} (supported: file, pkcs11)")


@dataclass(frozen=True)
class KeyStatus:
    source: str
    location: str
    master_key_id: str
    file_mode: str
    data_keys_active: int
    data_keys_destroyed: int
    wrapping_key_id: str = ""
    versions: tuple[VersionCount, ...] = ()
    last_rotation: datetime | None = None
    last_pseudonym_rekeying: datetime | None = None
    pseudonyms_due: tuple[str, ...] = ()


class CryptoService:
    """Holds the keyring, the data-key store and the blind indexer for the rest of Carnet."""

    def __init__(self, keyring: Keyring, *, key_dir: Path | None = None) -> None:
        """``key_dir`` keeps the generated (wrapped) RSA key; None keeps it in memory."""
        self.keyring = keyring
        self.key_dir = key_dir
        self._rsa_der: bytes | None = None
        self._rsa_lock = threading.Lock()
        self.data_keys = DataKeys(keyring)
        self.blind = BlindIndexer(keyring.derive("carnet/blind-index/v1"))
        self.project_keys = ProjectKeys(keyring)  # research pseudonyms (carnet/hub/omop)

    def audit_signer(self) -> Ed25519Signer:
        """The Ed25519 key that signs audit checkpoints, derived from the master key."""
        return Ed25519Signer(self.keyring.derive("carnet/audit-signing/v1"))

    def backup_keys(self) -> BackupKeys:
        """The key that seals backups and names their chunks, derived from the master key."""
        return BackupKeys(self.keyring)

    def token_signer(self) -> TokenSigner:
        """The keys that sign access tokens (Ed25519, derived from the master key) and ID tokens
        (RS256, generated once and kept wrapped by the master key in ``key_dir``)."""
        seed = self.keyring.derive("carnet/token-signing/v1")
        return TokenSigner(seed, key_id=f"{self.keyring.key_id[:16]}-t1", rsa_key=self._rsa_key)

    def _rsa_key(self) -> bytes:
        with self._rsa_lock:  # every signer of this service shares one key
            if self._rsa_der is None:
                path = self.key_dir / RSA_KEY_FILE if self.key_dir is not None else None
                self._rsa_der = load_or_create_rsa_key(self.keyring, path)
            return self._rsa_der

    def rotation(self, engine: Engine, settings: Settings) -> KeyRotation:
        """Rotation of the wrapping key over this store (`carnet keys rotate`)."""
        return KeyRotation(self.keyring, engine, settings.data_dir / RSA_KEY_FILE)

    def rekey_due_pseudonyms(self, engine: Engine) -> list[tuple[str, int]]:
        """Re-key every research project whose pseudonym key is past its period, logged as one
        rotation; returns (project, new generation) for each."""
        return rekey_due_pseudonyms(self.project_keys, engine)

    def custody(self, engine: Engine, settings: Settings) -> list[Custody]:
        """Every key: where it lives, who can use it, when it last changed (no key material)."""
        return custody(self.keyring, engine, settings.data_dir / RSA_KEY_FILE)

    def status(self, engine: Engine, settings: Settings) -> KeyStatus:
        """Where the master key is, its fingerprint and how many data keys exist."""
        with engine.connect() as conn:
            active = conn.execute(
                select(func.count()).select_from(data_key).where(data_key.c.wrapped.is_not(None))
            ).scalar_one()
            destroyed = conn.execute(
                select(func.count()).select_from(data_key).where(data_key.c.wrapped.is_(None))
            ).scalar_one()
        rotation = self.rotation(engine, settings)
        with engine.connect() as conn:
            due = tuple(self.project_keys.due(conn, utc_now()))
        mode = f"{self.keyring.file_mode():o}" if isinstance(self.keyring, FileKeyring) else "n/a"
        return KeyStatus(
            source=settings.key_source,
            location=(
                str(settings.key_file)
                if settings.key_source == "file"
                else f"hsm token {settings.hsm_token_label}, key {settings.hsm_key_label}"
            ),
            master_key_id=self.keyring.key_id,
            file_mode=mode,
            data_keys_active=active,
            data_keys_destroyed=destroyed,
            wrapping_key_id=self.keyring.wrapping_key_id,
            versions=tuple(rotation.counts()),
            last_rotation=rotation.last_rotation(WRAPPING),
            last_pseudonym_rekeying=rotation.last_rotation(PSEUDONYMS),
            pseudonyms_due=due,
        )
