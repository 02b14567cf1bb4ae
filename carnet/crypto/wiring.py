"""The crypto domain's wiring: the key holders, from the settings they read."""

from __future__ import annotations

from carnet.crypto.service import CryptoService, open_keyring
from carnet.settings import Settings


def build(settings: Settings) -> CryptoService:
    """The keyring named by the settings, with the wrapped RSA key kept beside the data."""
    return CryptoService(open_keyring(settings), key_dir=settings.data_dir)
