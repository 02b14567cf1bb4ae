"""The RSA key that signs ID tokens with RS256 (SMART App Launch requires RS256 support).

An RSA key cannot be derived from the master key the way the Ed25519 keys are, so it is generated
once and kept in a file, wrapped (AES-GCM) by the master key: the file alone is useless, and the
key never leaves ``carnet.crypto`` unwrapped. Two processes starting at once agree on one key
(the file appears whole, by a hard link that never replaces; the loser reads the winner's).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from carnet.crypto.keyring import Keyring, KeyringError

RSA_BITS = 2048  # RS256 with 2048 bits is what SMART and OpenID Connect relying parties expect
_OWNER = "carnet/token-signing-rsa/v1"  # bound into the wrapping, so the file is for this use only


def load_or_create_rsa_key(keyring: Keyring, path: Path | None) -> bytes:
    """The private key (PKCS#8 DER) kept at ``path``, created on first use; in memory only when
    ``path`` is None (a throwaway key, for tests)."""
    if path is None:
        return _new_key()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        der = _new_key()
        pending = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(keyring.wrap(der, _OWNER))
        try:
            os.link(pending, path)  # atomic, and refuses to replace: the first writer wins
        except FileExistsError:
            return load_or_create_rsa_key(keyring, path)
        finally:
            pending.unlink()
        return der
    try:
        return keyring.unwrap(path.read_bytes(), _OWNER)
    except (InvalidTag, ValueError) as exc:  # another master key wrapped it, or it was altered
        raise KeyringError(
            f"the ID-token signing key {path} was not wrapped by this master key"
        ) from exc


def _new_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
