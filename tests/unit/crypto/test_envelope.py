"""Per-owner data keys: AES-256-GCM envelope encryption, crypto-shredding, rollback safety."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import Engine, create_engine, func, select

from carnet.crypto.envelope import SHARED_OWNER, DataKeys, DecryptionError, KeyDestroyedError
from carnet.crypto.keyring import FileKeyring
from carnet.crypto.models import data_key
from carnet.db.schema import metadata
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.postgres import ThrowawayPostgres

OWNER = "patient:alice"
AAD = b"Patient/alice/1"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'keys.sqlite3'}")
    metadata.create_all(eng, tables=[data_key])
    yield eng
    eng.dispose()


@pytest.fixture
def keys(tmp_path: Path) -> DataKeys:
    return DataKeys(FileKeyring(tmp_path / "master.key"))


def _encrypt_committed(engine: Engine, keys: DataKeys, owner: str, plain: bytes) -> bytes:
    with engine.connect() as conn:
        with conn.begin():
            blob = keys.encrypt(conn, owner, plain, AAD)
        keys.after_commit(conn)
    return blob


def _decrypt(engine: Engine, keys: DataKeys, owner: str, blob: bytes, aad: bytes = AAD) -> bytes:
    with engine.connect() as conn:
        return keys.decrypt(conn, owner, blob, aad)


def test_owner_names() -> None:
    assert DataKeys.owner_for("123") == "patient:123"
    assert DataKeys.owner_for(None) == SHARED_OWNER


def test_round_trip_and_ciphertext_is_not_plaintext(engine: Engine, keys: DataKeys) -> None:
    plain = "Éloïse Quintrandeau, née à Brest".encode()
    blob = _encrypt_committed(engine, keys, OWNER, plain)
    assert plain not in blob
    assert len(blob) == 12 + len(plain) + 16  # nonce + ciphertext + GCM tag
    assert _decrypt(engine, keys, OWNER, blob) == plain


def test_nonce_is_fresh_each_time(engine: Engine, keys: DataKeys) -> None:
    a = _encrypt_committed(engine, keys, OWNER, b"same")
    b = _encrypt_committed(engine, keys, OWNER, b"same")
    assert a != b
    assert a[:12] != b[:12]


def test_one_wrapped_key_per_owner(engine: Engine, keys: DataKeys) -> None:
    _encrypt_committed(engine, keys, OWNER, b"one")
    _encrypt_committed(engine, keys, OWNER, b"two")
    _encrypt_committed(engine, keys, "patient:bob", b"three")
    with engine.connect() as conn:
        rows = conn.execute(select(data_key.c.owner, data_key.c.wrapped)).all()
    assert sorted(r.owner for r in rows) == ["patient:alice", "patient:bob"]
    assert all(r.wrapped is not None and len(r.wrapped) == 12 + 32 + 16 for r in rows)


def test_wrong_aad_fails(engine: Engine, keys: DataKeys) -> None:
    blob = _encrypt_committed(engine, keys, OWNER, b"body")
    # A body copied onto another row (other Type/id/version) does not decrypt.
    with pytest.raises(DecryptionError, match="does not authenticate"):
        _decrypt(engine, keys, OWNER, blob, b"Patient/alice/2")


def test_tampered_ciphertext_fails(engine: Engine, keys: DataKeys) -> None:
    blob = bytearray(_encrypt_committed(engine, keys, OWNER, b"body"))
    blob[-1] ^= 0x01
    with pytest.raises(DecryptionError):
        _decrypt(engine, keys, OWNER, bytes(blob))


def test_other_owners_key_does_not_decrypt(engine: Engine, keys: DataKeys) -> None:
    blob = _encrypt_committed(engine, keys, OWNER, b"body")
    _encrypt_committed(engine, keys, "patient:bob", b"x")
    with pytest.raises(DecryptionError):
        _decrypt(engine, keys, "patient:bob", blob)


def test_decrypt_without_any_key_fails(engine: Engine, keys: DataKeys) -> None:
    with pytest.raises(KeyDestroyedError, match="no data key"):
        _decrypt(engine, keys, "patient:nobody", b"\x00" * 40)


def test_destroy_then_decrypt_raises(engine: Engine, keys: DataKeys) -> None:
    blob = _encrypt_committed(engine, keys, OWNER, b"body")
    other = _encrypt_committed(engine, keys, "patient:bob", b"bob's body")
    with engine.begin() as conn:
        assert keys.destroy(conn, OWNER) is True
        assert keys.destroy(conn, OWNER) is False  # already gone
        assert keys.destroy(conn, "patient:never") is False
    with pytest.raises(KeyDestroyedError, match="destroyed"):
        _decrypt(engine, keys, OWNER, blob)
    assert _decrypt(engine, keys, "patient:bob", other) == b"bob's body"
    with engine.connect() as conn:
        row = conn.execute(select(data_key).where(data_key.c.owner == OWNER)).one()
    assert row.wrapped is None
    assert row.destroyed_at is not None


def test_destroyed_key_is_not_recreated_by_encrypt(engine: Engine, keys: DataKeys) -> None:
    """Writing again for a shredded owner must not silently mint a fresh key."""
    _encrypt_committed(engine, keys, OWNER, b"body")
    with engine.begin() as conn:
        keys.destroy(conn, OWNER)
    with engine.connect() as conn, conn.begin(), pytest.raises(KeyDestroyedError):
        keys.encrypt(conn, OWNER, b"new", AAD)


def test_fresh_data_keys_instance_reads_committed_key(
    engine: Engine, keys: DataKeys, tmp_path: Path
) -> None:
    blob = _encrypt_committed(engine, keys, OWNER, b"body")
    other_process = DataKeys(FileKeyring(tmp_path / "master.key"))
    assert _decrypt(engine, other_process, OWNER, blob) == b"body"


def test_other_master_key_cannot_unwrap(engine: Engine, keys: DataKeys, tmp_path: Path) -> None:
    blob = _encrypt_committed(engine, keys, OWNER, b"body")
    stranger = DataKeys(FileKeyring(tmp_path / "other.key"))
    # The wrapped key does not authenticate under another master key: a decryption error, which
    # is distinct from a destroyed key.
    with pytest.raises(DecryptionError) as info:
        _decrypt(engine, stranger, OWNER, blob)
    assert isinstance(info.value.__cause__, InvalidTag)


def test_key_created_in_rolled_back_transaction_is_not_reused(
    engine: Engine, keys: DataKeys
) -> None:
    """A key minted inside a transaction that rolls back never existed (after_rollback)."""
    with engine.connect() as conn:
        conn.begin()
        lost = keys.encrypt(conn, OWNER, b"lost", AAD)
        conn.rollback()
        keys.after_rollback(conn)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(data_key)).scalar_one() == 0
    kept = _encrypt_committed(engine, keys, OWNER, b"kept")
    assert _decrypt(engine, keys, OWNER, kept) == b"kept"
    # The rolled-back key was not the one stored: what it encrypted cannot be read.
    with pytest.raises(DecryptionError):
        _decrypt(engine, keys, OWNER, lost)


def test_key_destroyed_by_another_process_is_refused_here(
    engine: Engine, keys: DataKeys, tmp_path: Path
) -> None:
    """Keys are read from the database in every transaction, so a destroy elsewhere is seen."""
    blob = _encrypt_committed(engine, keys, OWNER, b"x")
    assert _decrypt(engine, keys, OWNER, blob) == b"x"  # this instance has used the key
    other_process = DataKeys(FileKeyring(tmp_path / "master.key"))
    with engine.begin() as conn:
        assert other_process.destroy(conn, OWNER) is True
    with pytest.raises(KeyDestroyedError):
        _decrypt(engine, keys, OWNER, blob)
    with engine.connect() as conn, conn.begin(), pytest.raises(KeyDestroyedError):
        keys.encrypt(conn, OWNER, b"new data for a shredded patient", AAD)


def test_unit_key_cache_is_dropped_at_commit_and_rollback(engine: Engine, keys: DataKeys) -> None:
    with engine.connect() as conn:
        conn.begin()
        keys.encrypt(conn, OWNER, b"x", AAD)
        assert conn.info  # keys used by this transaction are remembered for it only
        conn.rollback()
        keys.after_rollback(conn)
        assert not conn.info
        conn.begin()
        keys.encrypt(conn, OWNER, b"y", AAD)
        conn.commit()
        keys.after_commit(conn)
        assert not conn.info


def test_rollback_through_repository_unit(sqlite_services) -> None:  # type: ignore[no-untyped-def]
    """A unit that fails after minting a patient's key leaves no trace; the next write works."""
    repo = sqlite_services.fhir.repo
    body = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    with pytest.raises(RuntimeError, match="boom"), repo.unit() as unit:
        unit.write("Patient", "p1", body, method="PUT", previous=None)
        unit.flush()
        raise RuntimeError("boom")
    with repo.unit(write=False) as unit:
        assert unit.current("Patient", "p1") is None
    sqlite_services.fhir.update("Patient", "p1", body, ctx=AS_LOCAL_OPERATOR)
    assert (
        sqlite_services.fhir.read("Patient", "p1", ctx=AS_LOCAL_OPERATOR).body["gender"] == "female"
    )


def test_two_processes_creating_one_owners_key_agree_on_it(
    postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    """Two server workers writing a new patient's first resources at once: the second waits for
    the first's key, uses it, and nothing fails (it once answered 409 to one of them)."""
    eng = create_engine(postgres.create_database("envelope_race"))
    metadata.create_all(eng, tables=[data_key])
    first, second = (DataKeys(FileKeyring(tmp_path / "master.key")) for _ in range(2))
    results: dict[str, bytes] = {}
    with eng.connect() as conn_a:
        conn_a.begin()
        blob_a = first.encrypt(conn_a, OWNER, b"from A", AAD)

        def other_worker() -> None:
            with eng.connect() as conn_b, conn_b.begin():
                results["b"] = second.encrypt(conn_b, OWNER, b"from B", AAD)

        worker = threading.Thread(target=other_worker)
        worker.start()
        worker.join(0.5)
        assert worker.is_alive(), "the second insert should wait for the first transaction"
        conn_a.commit()
        worker.join(10)
    assert not worker.is_alive()
    fresh = DataKeys(FileKeyring(tmp_path / "master.key"))
    assert _decrypt(eng, fresh, OWNER, blob_a) == b"from A"
    assert _decrypt(eng, fresh, OWNER, results["b"]) == b"from B"
    with eng.connect() as conn:
        assert conn.execute(select(func.count()).select_from(data_key)).scalar_one() == 1
    eng.dispose()
