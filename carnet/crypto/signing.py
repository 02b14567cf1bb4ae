"""Signing keys derived from the master key (the audit log's checkpoint key).

The private key never leaves this module: callers get an object that signs bytes and tells its
public key, nothing else.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class Ed25519Signer:
    """An Ed25519 key derived from 32 bytes of key material; signs, never exports the private half."""

    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key_bytes(self) -> bytes:
        return self._public
