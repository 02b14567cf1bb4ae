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

from carnet.crypto.keyring import Keyring, KeyringError, WrappedKey

RSA_BITS = 2048  # RS256 with 2048 bits is what SMART and OpenID Connect relying parties expect
_OWNER = "carnet/token-signing-rsa/v1"  # bound into the wrapping, so the file is for this use only
# Files written since wrapping keys have versions start with this line, naming the version's id;
# an older file (no header) was wrapped by version 1, whose id is the root's fingerprint.
_HEADER = b"carnet-wrapped-by:"


def pack(wrapped: WrappedKey) -> bytes:
    """The file form of a wrapped key: a header line naming the wrapping version, then the key."""
    return _HEADER + wrapped.key_id.encode() + b"\n" + wrapped.wrapped


def unpack(content: bytes, root_id: str) -> WrappedKey:
    """Read a wrapped key file (with or without the header)."""
    if content.startswith(_HEADER):
        key_id, _, wrapped = content[len(_HEADER) :].partition(b"\n")
        return WrappedKey(key_id.decode(), wrapped)
    return WrappedKey(root_id, content)


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
            handle.write(pack(keyring.wrap(der, _OWNER)))
        try:
            os.link(pending, path)  # atomic, and refuses to replace: the first writer wins
        except FileExistsError:
            return load_or_create_rsa_key(keyring, path)
        finally:
            pending.unlink()
        return der
    found = unpack(path.read_bytes(), keyring.key_id)
    try:
        return keyring.unwrap(found.wrapped, _OWNER, found.key_id)
    except (InvalidTag, ValueError, UnicodeDecodeError) as exc:  # another key, or altered
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


def rewrap_rsa_key(keyring: Keyring, path: Path) -> bool:
    """Rewrap the key file under the current wrapping version (atomically replaced); False when
    there is no file or it is already there."""
    if not path.exists():
        return False
    found = unpack(path.read_bytes(), keyring.key_id)
    current = keyring.wrapping_key_id
    if found.key_id == current:
        return False
    der = keyring.unwrap(found.wrapped, _OWNER, found.key_id)
    pending = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pack(keyring.wrap(der, _OWNER)))
        handle.flush()
        os.fsync(handle.fileno())
    pending.replace(path)
    return True


def rsa_key_wrapped_by(keyring: Keyring, path: Path) -> str | None:
    """The id of the wrapping version that wrapped the key file, or None when there is none."""
    return unpack(path.read_bytes(), keyring.key_id).key_id if path.exists() else None
