"""The master key in an HSM (carnet/crypto/hsm.py), on a SoftHSM2 token made by the test: data
keys wrapped and unwrapped on the token, the key never extractable, a store running on it, and a
wrong PIN or a missing key refused in one clear error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from carnet.app import build_services
from carnet.crypto.hsm import Pkcs11Keyring
from carnet.crypto.keyring import KeyringError
from carnet.crypto.service import open_keyring
from tests.conftest import make_settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate
from tests.support.softhsm import SoftHsmToken, init_token


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    yield init_token(tmp_path_factory.mktemp("softhsm"))


def _keyring(
    token: SoftHsmToken, label: str = "carnet-master", create: bool = True
) -> Pkcs11Keyring:
    return Pkcs11Keyring(token.module, token.label, token.pin, label, create=create)


def test_data_keys_are_wrapped_on_the_token_and_bound_to_their_owner(token: SoftHsmToken) -> None:
    keyring = _keyring(token)
    data_key = bytes(range(32))
    wrapped = keyring.wrap(data_key, "patient:a")
    assert data_key not in wrapped.wrapped
    assert keyring.unwrap(wrapped.wrapped, "patient:a", wrapped.key_id) == data_key
    with pytest.raises(InvalidTag):
        keyring.unwrap(wrapped.wrapped, "patient:b", wrapped.key_id)  # moved to another owner
    again = _keyring(token)  # the same key found again on the token, not a new one
    assert again.key_id == keyring.key_id
    assert again.unwrap(wrapped.wrapped, "patient:a", wrapped.key_id) == data_key
    assert keyring.derive("purpose") == again.derive("purpose") != keyring.derive("other")


def test_the_master_key_on_the_token_cannot_be_extracted(token: SoftHsmToken) -> None:
    assert _keyring(token).extractable() is False


def test_a_wrong_pin_or_a_missing_key_is_one_clear_error(token: SoftHsmToken) -> None:
    with pytest.raises(KeyringError, match="cannot open HSM token"):
        Pkcs11Keyring(token.module, token.label, "000000", "carnet-master")
    with pytest.raises(KeyringError, match="no key 'absent'"):
        _keyring(token, "absent", create=False)


def test_a_store_runs_with_its_master_key_in_the_hsm(
    token: SoftHsmToken, tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    migrated_sqlite.copy_into(tmp_path / "data")
    settings = make_settings(tmp_path / "data").with_(
        key_source="pkcs11",
        hsm_module=token.module,
        hsm_token_label=token.label,
        hsm_pin=token.pin,
        hsm_key_label="store-master",
    )
    assert isinstance(open_keyring(settings), Pkcs11Keyring)
    services = build_services(settings, migrate=False)
    try:
        body = {"resourceType": "Patient", "name": [{"family": "Hsm"}]}
        pid = services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id
        read = services.fhir.read("Patient", pid, ctx=AS_LOCAL_OPERATOR)
        assert read.body is not None and read.body["name"] == [{"family": "Hsm"}]
        status = services.crypto.status(services.engine, settings)
        assert status.location == f"hsm token {token.label}, key store-master"
        assert status.data_keys_active >= 1
        [master] = [
            c for c in services.crypto.custody(services.engine, settings) if "master" in c.key
        ]
        assert "non-extractable" in master.where and token.label in master.where
    finally:
        services.close()
    assert not (tmp_path / "data" / "master.key").exists()  # no key file was made


def test_rotation_on_the_hsm_rewraps_every_key_and_destroys_the_retired_version(
    token: SoftHsmToken, tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    migrated_sqlite.copy_into(tmp_path / "data")
    settings = make_settings(tmp_path / "data").with_(
        key_source="pkcs11",
        hsm_module=token.module,
        hsm_token_label=token.label,
        hsm_pin=token.pin,
        hsm_key_label="rotating-master",
    )
    services = build_services(settings, migrate=False)
    try:
        body = {"resourceType": "Patient", "name": [{"family": "Rotated"}]}
        pid = services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id
        root = services.crypto.keyring.key_id
        rotation = services.crypto.rotation(services.engine, settings)
        report = rotation.rotate(batch=1)
        assert report.version == 2 and report.data_keys >= 1
        rotation.retire(1)
        keyring = services.crypto.keyring
        assert [v.version for v in keyring.versions()] == [2]  # version 1 destroyed on the token
        assert isinstance(keyring, Pkcs11Keyring) and keyring.extractable() is False
    finally:
        services.close()
    again = build_services(settings, migrate=False)  # a new process finds version 2 on the token
    try:
        assert again.crypto.keyring.key_id == root
        read = again.fhir.read("Patient", pid, ctx=AS_LOCAL_OPERATOR)
        assert read.body is not None and read.body["name"] == [{"family": "Rotated"}]
    finally:
        again.close()
