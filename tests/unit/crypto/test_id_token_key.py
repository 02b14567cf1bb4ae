"""The RSA key that signs ID tokens: generated once, kept wrapped by the master key, the same
after a restart, useless under another master key."""

from __future__ import annotations

from pathlib import Path

import pytest

from carnet.crypto.keyring import FileKeyring, KeyringError
from carnet.crypto.service import RSA_KEY_FILE, CryptoService


def _rsa_public(service: CryptoService) -> dict[str, str]:
    keys = service.token_signer().public_jwks()["keys"]
    return next(k for k in keys if k["kty"] == "RSA")


def test_id_token_key_survives_a_restart_and_is_stored_wrapped(tmp_path: Path) -> None:
    keyring = FileKeyring(tmp_path / "master.key")
    first = _rsa_public(CryptoService(keyring, key_dir=tmp_path))
    stored = (tmp_path / RSA_KEY_FILE).read_bytes()
    assert (tmp_path / RSA_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" not in stored and not stored.startswith(b"\x30\x82")  # not DER/PEM
    again = _rsa_public(CryptoService(FileKeyring(tmp_path / "master.key"), key_dir=tmp_path))
    assert again == first
    assert list(tmp_path.glob("*.tmp")) == []


def test_id_token_key_wrapped_by_another_master_key_is_refused(tmp_path: Path) -> None:
    _rsa_public(CryptoService(FileKeyring(tmp_path / "master.key"), key_dir=tmp_path))
    other = CryptoService(FileKeyring(tmp_path / "other.key"), key_dir=tmp_path)
    with pytest.raises(KeyringError):
        other.token_signer().public_jwks()
