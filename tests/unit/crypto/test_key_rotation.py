"""Rotation of the wrapping key (carnet/crypto/rotation.py, `carnet keys rotate|retire|status`):
every data key rewrapped under a new version without re-encrypting bodies, online beside a live
writer, resumable; the derivation root (blind indexes) unchanged; a retired version no longer
needed by anything, a crypto-shredded patient still unreadable, the audit log still verifying."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from carnet.app import Services, build_services
from carnet.audit.models import audit_event
from carnet.audit.verify import verify
from carnet.crypto.keyring import FileKeyring, KeyringError
from carnet.crypto.models import data_key, key_rotation
from carnet.crypto.rotation import KeyRotation, RotationError
from carnet.fhir.errors import FhirError
from carnet.fhir.models import resource
from carnet.settings import Settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke
from tests.support.forkserver import ForkServer


def _patient(services: Services, family: str) -> str:
    body = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ana"]}]}
    return str(services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id)


def _family(services: Services, pid: str) -> str:
    read = services.fhir.read("Patient", pid, ctx=AS_LOCAL_OPERATOR)
    assert read.body is not None
    return str(read.body["name"][0]["family"])


def _found_by_name(services: Services, family: str) -> int:
    bundle = services.fhir.search(
        "http://127.0.0.1/fhir", "Patient", [("family", family)], ctx=AS_LOCAL_OPERATOR
    )
    return len(bundle.get("entry", []))


def _bodies(services: Services) -> dict[str, bytes]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(resource.c.res_id, resource.c.body)).all()
    return {str(row.res_id): bytes(row.body) for row in rows if row.body is not None}


def _key_ids(services: Services) -> set[str]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(data_key.c.master_key_id).where(data_key.c.wrapped.is_not(None)))
        return set(rows.scalars())


@pytest.fixture
def store(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=False)
    yield built
    built.close()


def _rotation(services: Services) -> KeyRotation:
    return services.crypto.rotation(services.engine, services.settings)


@pytest.mark.both_backends
def test_rotation_rewraps_every_data_key_and_leaves_bodies_and_blind_indexes_alone(
    store: Services,
) -> None:
    kept = [_patient(store, f"Rotation{n}") for n in range(5)]
    shredded = _patient(store, "Shredded")
    with store.fhir.repo.unit() as unit:
        assert unit.destroy_patient_key(shredded)
    before = _bodies(store)
    root = store.crypto.keyring.key_id
    old = store.crypto.keyring.wrapping_key_id

    report = _rotation(store).rotate(batch=2)

    assert report.version == 2 and report.data_keys >= 5 and report.batches >= 3
    assert _key_ids(store) == {report.target_key_id} != {old}
    assert _bodies(store) == before  # no body re-encrypted
    assert store.crypto.keyring.key_id == root  # the derivation root did not move
    _rotation(store).retire(1)
    assert [v.retired for v in store.crypto.keyring.versions()] == [True, False]

    # A new process, with version 1 retired: every body reads, search by name still finds
    # (blind indexes unchanged), the shredded patient stays unreadable, the log verifies.
    store.close()
    again = build_services(store.settings, migrate=False)
    try:
        assert [_family(again, pid) for pid in kept] == [f"Rotation{n}" for n in range(5)]
        assert _found_by_name(again, "Rotation3") == 1
        with pytest.raises(FhirError):
            again.fhir.read("Patient", shredded, ctx=AS_LOCAL_OPERATOR)
        assert verify(again.audit).ok
        status = again.crypto.status(again.engine, again.settings)
        assert status.last_rotation is not None and status.wrapping_key_id == report.target_key_id
        assert [(v.version, v.retired, v.data_keys) for v in status.versions][:1] == [(1, True, 0)]
    finally:
        again.close()


@pytest.mark.both_backends
def test_rotation_beside_a_live_writer_leaves_no_key_behind(store: Services) -> None:
    for n in range(6):
        _patient(store, f"Before{n}")
    written: list[str] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            while (not stop.is_set() or len(written) < 4) and len(written) < 30:
                written.append(_patient(store, f"During{len(written)}"))
        except Exception as exc:  # noqa: BLE001 - reported below: a thread must not fail silently
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = _rotation(store).rotate(batch=2)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    # Keys the writer made after the new version appeared are under it; those made before were
    # rewrapped by the rotation's passes, which run until none is left under the old version.
    assert written and _key_ids(store) == {report.target_key_id}
    _rotation(store).retire(1)
    assert [_family(store, pid) for pid in written] == [f"During{n}" for n in range(len(written))]


@pytest.mark.both_backends
def test_an_interrupted_rotation_resumes_to_the_same_version(store: Services) -> None:
    for n in range(5):
        _patient(store, f"Resume{n}")

    def crash(done: int) -> None:
        raise KeyboardInterrupt  # the operator's ^C after the first committed batch

    with pytest.raises(KeyboardInterrupt):
        _rotation(store).rotate(batch=2, on_batch=crash)
    half = _key_ids(store)
    assert len(half) == 2  # some keys moved, some not: and every one of them still reads
    assert [_family(store, pid) for pid in _patient_ids(store)]

    resumed = _rotation(store).rotate(batch=2)
    assert resumed.resumed and resumed.version == 2
    assert _key_ids(store) == {resumed.target_key_id}
    with store.engine.connect() as conn:
        rows = conn.execute(select(key_rotation.c.finished_at)).all()
    assert len(rows) == 1 and rows[0].finished_at is not None


def _patient_ids(services: Services) -> list[str]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(resource.c.res_id).where(resource.c.res_type == "Patient"))
        return sorted(set(rows.scalars()))


def test_a_version_still_wrapping_keys_or_current_cannot_be_retired(store: Services) -> None:
    _patient(store, "Retire")
    rotation = _rotation(store)
    with pytest.raises(KeyringError, match="current wrapping key cannot be retired"):
        rotation.retire(1)
    store.crypto.keyring.add_version()  # a new version exists, but nothing was rewrapped
    with pytest.raises(RotationError, match="still wraps"):
        rotation.retire(1)
    with pytest.raises(RotationError, match="no usable wrapping key version 9"):
        rotation.retire(9)


def test_a_file_keyring_with_a_retired_version_refuses_keys_wrapped_by_it(tmp_path: Path) -> None:
    keyring = FileKeyring(tmp_path / "master.key")
    old = keyring.wrap(b"k" * 32, "patient:a")
    keyring.add_version()
    new = keyring.wrap(b"k" * 32, "patient:a")
    assert new.key_id.endswith(".v2") and old.key_id == keyring.key_id
    assert keyring.unwrap(old.wrapped, "patient:a", old.key_id) == b"k" * 32
    keyring.retire(1)
    with pytest.raises(KeyringError, match="version 1 is retired"):
        FileKeyring(tmp_path / "master.key").unwrap(old.wrapped, "patient:a", old.key_id)
    assert FileKeyring(tmp_path / "master.key").unwrap(new.wrapped, "patient:a", new.key_id)
    assert (tmp_path / "master.key.wrap-v2").stat().st_mode & 0o077 == 0


def test_keys_rotate_and_status_on_the_command_line(store: Services) -> None:
    _patient(store, "Cli")
    env = {
        "CARNET_DATA_DIR": str(store.settings.data_dir),
        "CARNET_DATABASE_URL": store.settings.database_url,
        "COLUMNS": "250",
    }
    rotated = invoke(["keys", "rotate"], env=env, catch_exceptions=False)
    assert rotated.exit_code == 0 and "wrapping key v2" in rotated.output, rotated.output
    retired = invoke(["keys", "retire", "1"], env=env, catch_exceptions=False)
    assert retired.exit_code == 0, retired.output
    status = invoke(["keys", "status"], env=env, catch_exceptions=False)
    assert "v1 " in status.output and "retired: 0 data keys" in status.output
    assert "usable: 1 data keys" in status.output.replace("2 data keys", "1 data keys")
    assert "last rotation   never" not in status.output
    refused = invoke(["keys", "retire", "2"], env=env, catch_exceptions=False)
    assert refused.exit_code == 1 and "current wrapping key" in refused.output
    scheduled = invoke(["keys", "schedule", "p-1", "--every", "90"], env=env)
    assert scheduled.exit_code == 0, scheduled.output
    custody = invoke(["keys", "custody"], env=env, catch_exceptions=False).output
    assert re.search(r"wrapping key v1 \S+ \(retired\)", custody), custody
    assert re.search(r"wrapping key v2 \S+ \(current\) \| .*\| rotated in 20\d\d-", custody)
    assert re.search(r"pseudonym key of project p-1 \(generation 1\) .*every 90 days", custody)
    store.audit.drain()
    with store.engine.connect() as conn:
        bodies = conn.execute(select(audit_event.c.body)).scalars().all()
    events = [orjson.loads(body) for body in bodies]
    done = {(e["action"], e["outcome"]) for e in events}
    assert {("key-rotate", 200), ("key-retire", 200), ("pseudonym-schedule", 200)} <= done
    assert ("key-retire", 409) in done  # the refused retirement is audited too


@pytest.mark.slow  # a process that migrates a fresh store: 5 s idle, 30 s on a loaded machine
def test_the_key_rotation_benchmark_runs_and_prints_its_ratio(
    forks: ForkServer, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[3]
    # `python benchmarks/keys.py ...`, forked from a parent that imported carnet once.
    script = str(root / "benchmarks" / "keys.py")
    done = forks.run(script, ["--keys", "50", "--batch", "20"], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^carnet keys rotate\s+\d+\.\d+\s+\d+\s+\d+\.\d+$", done.stdout, re.M), (
        done.stdout
    )
    assert "3 batches" in done.stdout
