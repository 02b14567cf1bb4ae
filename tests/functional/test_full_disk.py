"""A full disk and a read-only data directory: clear errors, and nothing lost (issue 16).

Real faults, not simulated ones: the store lives on a tmpfs of a few MiB filled to its last byte
(the kernel answers ENOSPC, SQLite SQLITE_FULL), or behind a read-only bind mount (EROFS, which
root cannot override as it would a chmod). What each test pins:

- the FHIR API answers 507 (full) or 503 (read-only) with an OperationOutcome ``no-store``,
  never a 500, for a plain write as for a deposit whose attachment cannot reach the blob store;
- the failed write leaves nothing: no resource version, no half-written blob file;
- everything committed before stays readable and whole, the audit log verifies, and writes
  succeed again once space is freed;
- the CLI (`carnet import`, `carnet serve`) prints one line and exits 1; a rerun of the import
  once space is freed stores exactly what a run on a roomy disk stores.

The mounts need root (tests/support/small_disk.py); elsewhere the tests skip, saying why.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

import carnet.cli.main
from carnet.app import Services, build_services, create_app
from carnet.audit.verify import verify
from carnet.demo.pdf import make_pdf
from tests.conftest import make_settings
from tests.support.auth import bearer
from tests.support.forked import exit_code, fork_child, kill
from tests.support.migrated_store import SqliteTemplate
from tests.support.small_disk import fill, read_only_view, small_disk

DISK_MIB = 8  # the migrated store takes about 1.5 MiB of it
MARK = "urn:carnet:test:full-disk"  # identifier system of the resources written by these tests
FIRST_PDF = make_pdf("Compte rendu", ["Avant que le disque soit plein."])
SECOND_PDF = make_pdf("Compte rendu", ["Pendant que le disque est plein."])
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Store:
    data_dir: Path
    services: Services
    client: TestClient


def _open(data_dir: Path) -> Store:
    settings = make_settings(data_dir)
    services = build_services(settings, migrate=False)
    app = create_app(settings, services)
    client = TestClient(
        app,
        base_url="http://127.0.0.1",
        headers=bearer(services),
        raise_server_exceptions=False,  # a fault must come back as an answer, never a crash
    )
    return Store(data_dir, services, client)


@pytest.fixture
def store_on_small_disk(tmp_path: Path, migrated_sqlite: SqliteTemplate) -> Iterator[Store]:
    with small_disk(tmp_path / "disk", mib=DISK_MIB) as disk:
        migrated_sqlite.copy_into(disk / "data")
        store = _open(disk / "data")
        try:
            with store.client:
                yield store
        finally:
            (disk / "filler").unlink(missing_ok=True)  # room for the last audit flush
            store.services.close()


@pytest.fixture
def store(tmp_path: Path, migrated_sqlite: SqliteTemplate) -> Iterator[Store]:
    migrated_sqlite.copy_into(tmp_path / "data")
    store = _open(tmp_path / "data")
    try:
        with store.client:
            yield store
    finally:
        store.services.close()


def _patient(client: TestClient) -> str:
    answer = client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "female"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _document(patient_id: str, pdf: bytes, mark: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "identifier": [{"system": MARK, "value": mark}],
        "status": "current",
        "subject": {"reference": f"Patient/{patient_id}"},
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "data": base64.b64encode(pdf).decode(),
                }
            }
        ],
    }


def _observation(patient_id: str, mark: str, padding: int = 0) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "identifier": [{"system": MARK, "value": mark}],
        "status": "final",
        "code": {"text": "poids " + "x" * padding},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {"value": 61.5, "unit": "kg"},
    }


def _marks(client: TestClient, res_type: str) -> set[str]:
    """The marks of every stored resource of ``res_type`` written by these tests."""
    answer = client.get(f"/fhir/{res_type}", params={"identifier": f"{MARK}|", "_count": "1000"})
    assert answer.status_code == 200, answer.text
    return {
        ident["value"]
        for entry in answer.json().get("entry", [])
        for ident in entry["resource"].get("identifier", [])
        if ident.get("system") == MARK
    }


def _no_store(answer: Any, status: int) -> str:
    """The diagnostics of a ``no-store`` OperationOutcome answered with ``status``."""
    assert answer.status_code == status, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue["code"] == "no-store"
    return str(issue["diagnostics"])


def _half_written_blobs(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs").rglob("*") if p.is_file() and p.suffix]


def test_a_full_disk_answers_507_stores_nothing_and_loses_nothing(
    store_on_small_disk: Store,
) -> None:
    client, disk = store_on_small_disk.client, store_on_small_disk.data_dir.parent
    patient = _patient(client)
    assert (
        client.post("/fhir/DocumentReference", json=_document(patient, FIRST_PDF, "d0")).status_code
        == 201
    )
    before = {f"o{i}" for i in range(3)}
    for mark in sorted(before):
        assert client.post("/fhir/Observation", json=_observation(patient, mark)).status_code == 201

    filler = fill(disk)
    # Plain writes go on until the database's own pages run out, then are refused alike.
    written: set[str] = set()
    for i in range(400):
        answer = client.post("/fhir/Observation", json=_observation(patient, f"f{i}", 4000))
        if answer.status_code != 201:
            assert "full" in _no_store(answer, 507)
            break
        written.add(f"f{i}")
    else:
        pytest.fail("400 writes of 4 kB fitted on a full disk")

    filler.unlink()
    assert _marks(client, "DocumentReference") == {"d0"}
    assert _marks(client, "Observation") == before | written
    (document,) = client.get("/fhir/DocumentReference", params={"identifier": f"{MARK}|d0"}).json()[
        "entry"
    ]
    data = document["resource"]["content"][0]["attachment"]["data"]
    assert hashlib.sha256(base64.b64decode(data)).digest() == hashlib.sha256(FIRST_PDF).digest()
    assert (
        client.post(
            "/fhir/DocumentReference", json=_document(patient, SECOND_PDF, "d1")
        ).status_code
        == 201
    )
    assert verify(store_on_small_disk.services.audit).ok


def test_a_full_blob_store_answers_507_and_stores_nothing(store: Store, tmp_path: Path) -> None:
    """The blob store on a disk of its own (a mount at <data dir>/blobs), full; the database
    has room: a deposit is refused whole, a write without an attachment goes through."""
    client = store.client
    patient = _patient(client)
    assert (
        client.post("/fhir/DocumentReference", json=_document(patient, FIRST_PDF, "d0")).status_code
        == 201
    )
    kept = {
        p.relative_to(store.data_dir): p.read_bytes()
        for p in (store.data_dir / "blobs").rglob("*")
        if p.is_file()
    }
    with small_disk(tmp_path / "blob-disk", mib=1) as blob_disk:
        for relative, content in kept.items():  # the same blobs, on the small disk
            (blob_disk / relative.relative_to("blobs")).parent.mkdir(parents=True, exist_ok=True)
            (blob_disk / relative.relative_to("blobs")).write_bytes(content)
        with read_only_view(blob_disk, store.data_dir / "blobs", read_only=False):
            filler = fill(blob_disk)
            refused = client.post(
                "/fhir/DocumentReference", json=_document(patient, SECOND_PDF, "d1")
            )
            assert "full" in _no_store(refused, 507)
            assert not _half_written_blobs(store.data_dir)
            assert _marks(client, "DocumentReference") == {"d0"}  # readable meanwhile
            assert (
                client.post("/fhir/Observation", json=_observation(patient, "o0")).status_code
                == 201
            )
            filler.unlink()
            assert (
                client.post(
                    "/fhir/DocumentReference", json=_document(patient, SECOND_PDF, "d1")
                ).status_code
                == 201
            )
    assert verify(store.services.audit).ok


def test_a_read_only_blob_store_answers_503_and_stores_nothing(store: Store) -> None:
    client = store.client
    patient = _patient(client)
    assert (
        client.post("/fhir/DocumentReference", json=_document(patient, FIRST_PDF, "d0")).status_code
        == 201
    )
    blobs = store.data_dir / "blobs"
    with read_only_view(blobs, blobs):
        refused = client.post("/fhir/DocumentReference", json=_document(patient, SECOND_PDF, "d1"))
        assert "read-only" in _no_store(refused, 503)
        assert _marks(client, "DocumentReference") == {"d0"}  # still readable meanwhile
        assert client.post("/fhir/Observation", json=_observation(patient, "o0")).status_code == 201
    assert not _half_written_blobs(store.data_dir)
    assert (
        client.post(
            "/fhir/DocumentReference", json=_document(patient, SECOND_PDF, "d1")
        ).status_code
        == 201
    )
    assert verify(store.services.audit).ok


@dataclass
class Ran:
    returncode: int
    stderr: str


def _carnet(data_dir: Path, log: Path, *args: str) -> Ran:
    """``carnet ARGS`` on ``data_dir``, as its console script runs it (carnet.cli.main.main), in
    a child forked from this process: no interpreter to start."""

    def child() -> int:
        for name in [n for n in os.environ if n.startswith("CARNET_")]:
            del os.environ[name]
        os.environ["CARNET_DATA_DIR"] = str(data_dir)
        sys.argv = ["carnet", *args]
        carnet.cli.main.main()
        return 0

    log.unlink(missing_ok=True)
    pid = fork_child(child, log)
    code = exit_code(pid, 300)
    if code is None:
        kill(pid)
        pytest.fail(f"carnet {args[0]} still running after 300 s: {log.read_text()[-2000:]}")
    return Ran(code, log.read_text())


def _one_clear_line(done: Ran, words: str) -> None:
    """Exit 1 with one ``error:`` line saying ``words``, and no traceback."""
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert words in errors[0], errors[0]
    assert "Traceback" not in done.stderr, done.stderr


def _ndjson(folder: Path, lines: int, padding: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Observation.ndjson"
    path.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "resourceType": "Observation",
                    "identifier": [{"system": MARK, "value": f"n{i}"}],
                    "status": "final",
                    "code": {"text": "x" * padding},
                }
            )
            + b"\n"
            for i in range(lines)
        )
    )
    return path


def test_import_on_a_full_disk_is_one_clear_line_and_its_rerun_stores_everything(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    source = _ndjson(tmp_path / "in", 100, 2000)
    with small_disk(tmp_path / "disk", mib=2 * DISK_MIB) as disk:  # room for the whole import
        migrated_sqlite.copy_into(disk / "data")
        filler = fill(disk)
        log = tmp_path / "import.log"
        _one_clear_line(_carnet(disk / "data", log, "import", str(source)), "full")
        filler.unlink()
        rerun = _carnet(disk / "data", log, "import", str(source))
        assert rerun.returncode == 0, rerun.stderr
        store = _open(disk / "data")
        try:
            with store.client:
                assert _marks(store.client, "Observation") == {f"n{i}" for i in range(100)}
            assert verify(store.services.audit).ok
        finally:
            store.services.close()


def test_a_read_only_data_directory_is_one_clear_line_and_changes_nothing(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    migrated_sqlite.copy_into(tmp_path / "real" / "data")

    def write_a_patient() -> int:  # in a child: no connection of this process stays open on it
        store = _open(tmp_path / "real" / "data")
        try:
            with store.client:
                _patient(store.client)
        finally:
            store.services.close()
        return 0

    assert exit_code(fork_child(write_a_patient, tmp_path / "setup.log"), 300) == 0
    database = tmp_path / "real" / "data" / "carnet.sqlite3"
    digest = hashlib.sha256(database.read_bytes()).hexdigest()
    source = _ndjson(tmp_path / "in", 3, 10)
    view = tmp_path / "view"
    with read_only_view(tmp_path / "real", view):
        imported = _carnet(view / "data", tmp_path / "import.log", "import", str(source))
        _one_clear_line(imported, "read-only")
        served = _carnet(view / "data", tmp_path / "serve.log", "serve", "--port", "0")
        _one_clear_line(served, "read-only")
    assert hashlib.sha256(database.read_bytes()).hexdigest() == digest
