"""Public interface of the crypto domain: build the key holders from settings, report their status."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from carnet.crypto.blind_index import BlindIndexer
from carnet.crypto.envelope import DataKeys
from carnet.crypto.keyring import FileKeyring, Keyring, KeyringError
from carnet.crypto.models import data_key
from carnet.crypto.signing import Ed25519Signer
from carnet.crypto.tokens import TokenSigner
from carnet.settings import Settings


def open_keyring(settings: Settings, *, create: bool = True) -> Keyring:
    """The master keyring named by ``settings.key_source``."""
    if settings.key_source == "file":
        return FileKeyring(settings.key_file, create=create)
    raise KeyringError(f"unknown key source {settings.key_source!r} (supported: file)")


@dataclass(frozen=True)
class KeyStatus:
    source: str
    location: str
    master_key_id: str
    file_mode: str
    data_keys_active: int
    data_keys_destroyed: int


class CryptoService:
    """Holds the keyring, the data-key store and the blind indexer for the rest of Carnet."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.data_keys = DataKeys(keyring)
        self.blind = BlindIndexer(keyring.derive("carnet/blind-index/v1"))

    def audit_signer(self) -> Ed25519Signer:
        """The Ed25519 key that signs audit checkpoints, derived from the master key."""
        return Ed25519Signer(self.keyring.derive("carnet/audit-signing/v1"))

    def token_signer(self) -> TokenSigner:
        """The Ed25519 key that signs access and ID tokens, derived from the master key."""
        seed = self.keyring.derive("carnet/token-signing/v1")
        return TokenSigner(seed, key_id=f"{self.keyring.key_id[:16]}-t1")

    def status(self, engine: Engine, settings: Settings) -> KeyStatus:
        """Where the master key is, its fingerprint and how many data keys exist."""
        with engine.connect() as conn:
            active = conn.execute(
                select(func.count()).select_from(data_key).where(data_key.c.wrapped.is_not(None))
            ).scalar_one()
            destroyed = conn.execute(
                select(func.count()).select_from(data_key).where(data_key.c.wrapped.is_(None))
            ).scalar_one()
        mode = f"{self.keyring.file_mode():o}" if isinstance(self.keyring, FileKeyring) else "n/a"
        return KeyStatus(
            source=settings.key_source,
            location=str(settings.key_file) if settings.key_source == "file" else "hsm",
            master_key_id=self.keyring.key_id,
            file_mode=mode,
            data_keys_active=active,
            data_keys_destroyed=destroyed,
        )
