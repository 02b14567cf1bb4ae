"""Security properties of the data directory: nothing identifying or clinical is stored in clear,
destroying a patient's data key erases that patient only, and the master key file is protected.

The scans read every byte of every file under the data directory (database, WAL, shared memory,
blobs, key file) and look for the values we wrote, as written and in the normalised forms the
search code derives from them (lower/upper case, accents stripped, NFC and NFD), in UTF-8 and
UTF-16. A control shows the scan does find a marker written in clear.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carnet.app import Services, build_services, create_app
from carnet.crypto.envelope import DataKeys, KeyDestroyedError
from carnet.crypto.keyring import FileKeyring, KeyringError
from carnet.crypto.models import data_key
from carnet.demo.pdf import make_pdf
from carnet.fhir.errors import FhirError
from carnet.fhir.store_scan import raw_bodies
from tests.conftest import make_settings
from tests.support.auth import bearer
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate

BASE = "http://127.0.0.1/fhir"
GIVEN = "Éloïse"
FAMILY = "Quintrandeau"
FULL_NAME = f"{GIVEN} {FAMILY}"
NIR = "285077505612370"  # valid NIR: woman, July 1985, Paris (75056), order 123, key 70
NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
PHONE = "+33 6 47 19 82 53"
EMAIL = "eloise.quintrandeau@exemple-sante.fr"
ADDRESS_LINE = "14 impasse des Glycines Mordorées"
CITY = "Saint-Barthélemy-de-Vals"
NARRATIVE = "La patiente rapporte une allergie sévère aux noisettes depuis l'enfance."
NOTE = "Douleur thoracique atypique signalée après la randonnée du Vercors."
PDF_MARKER = "COMPTE-RENDU-CONFIDENTIEL-ZEBULON-4471"
BINARY_TEXT = "Courrier du docteur Pfeffelmann: traitement par lithium poursuivi."
LOINC_HEIGHT = "8302-2"  # a code: indexed in clear by design (control for the scan)

# A real PDF (deposits are screened), its marker in an uncompressed content stream.
PDF_BYTES = make_pdf(PDF_MARKER, [])


def _variants(text: str) -> set[str]:
    """The value as written and the normalised forms search code may derive from it."""
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    )
    forms = {text, text.lower(), text.upper(), text.casefold(), stripped}
    forms |= {stripped.lower(), stripped.upper()}
    forms |= {unicodedata.normalize("NFD", f) for f in list(forms)}
    return forms


def _needles() -> dict[str, set[bytes]]:
    plain: dict[str, set[str]] = {
        "given name": _variants(GIVEN),
        "family name": _variants(FAMILY),
        "full name": _variants(FULL_NAME),
        "NIR": {NIR, NIR[:13]},
        "phone": {PHONE, PHONE.replace(" ", ""), "647198253"},
        "email": _variants(EMAIL),
        "address line": _variants(ADDRESS_LINE),
        "city": _variants(CITY),
        "narrative": _variants(NARRATIVE) | {NARRATIVE[:40]},
        "note": _variants(NOTE) | {NOTE[:40]},
        "pdf marker": _variants(PDF_MARKER),
        "pdf base64": {base64.b64encode(PDF_BYTES).decode()},
        "binary text": _variants(BINARY_TEXT) | {BINARY_TEXT[:40]},
    }
    out: dict[str, set[bytes]] = {}
    for label, texts in plain.items():
        encoded: set[bytes] = set()
        for text in texts:
            encoded.add(text.encode("utf-8"))
            encoded.add(text.encode("utf-16-le"))
            encoded.add(text.encode("utf-16-be"))
        out[label] = encoded
    return out


def scan(root: Path, needles: dict[str, set[bytes]]) -> list[str]:
    """Every (file, label) where one of the needles occurs, reading all files as bytes."""
    hits: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for label, forms in needles.items():
            if any(form in data for form in forms):
                hits.append(f"{path.relative_to(root)}: {label}")
    return hits


def _patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{FULL_NAME}</p>'
            f"<p>{NARRATIVE}</p></div>",
        },
        "identifier": [{"system": NIR_SYSTEM, "value": NIR}],
        "name": [{"use": "official", "family": FAMILY, "given": [GIVEN]}],
        "telecom": [
            {"system": "phone", "value": PHONE, "use": "mobile"},
            {"system": "email", "value": EMAIL},
        ],
        "gender": "female",
        "birthDate": "1985-07-14",
        "address": [{"line": [ADDRESS_LINE], "city": CITY, "postalCode": "26240"}],
        **extra,
    }


def _observation(patient_id: str, value: float, note: str | None = None) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": LOINC_HEIGHT}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-03-05T10:15:00+01:00",
        "valueQuantity": {
            "value": value,
            "unit": "cm",
            "system": "http://unitsofmeasure.org",
            "code": "cm",
        },
    }
    if note:
        obs["note"] = [{"text": note}]
    return obs


def _document(patient_id: str, pdf: bytes = PDF_BYTES) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{patient_id}"},
        "description": f"Compte rendu de {FULL_NAME}",
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "title": f"CR {FAMILY}",
                    "data": base64.b64encode(pdf).decode(),
                }
            }
        ],
    }


def _load_sensitive(services: Services) -> dict[str, str]:
    fhir = services.fhir
    pid = fhir.create("Patient", _patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    obs = fhir.create(
        "Observation", _observation(pid, 168.0, NOTE), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    doc = fhir.create("DocumentReference", _document(pid), ctx=AS_LOCAL_OPERATOR).stored.res_id
    binary = fhir.create(
        "Binary",
        {
            "resourceType": "Binary",
            "contentType": "text/plain",
            "data": base64.b64encode(BINARY_TEXT.encode()).decode(),
        },
        ctx=AS_LOCAL_OPERATOR,
    ).stored.res_id
    # A second version, so that history rows are on disk too.
    fhir.update("Patient", pid, {**_patient(), "id": pid, "active": True}, ctx=AS_LOCAL_OPERATOR)
    return {"patient": pid, "observation": obs, "document": doc, "binary": binary}


@pytest.fixture
def loaded(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> Iterator[tuple[Services, dict[str, str]]]:
    migrated_sqlite.copy_into(tmp_path / "data")
    services = build_services(make_settings(tmp_path / "data"), migrate=False)
    ids = _load_sensitive(services)
    yield services, ids
    services.close()


def test_data_reads_back(loaded: tuple[Services, dict[str, str]]) -> None:
    """The values really were stored (the scans below are not vacuous)."""
    services, ids = loaded
    fhir = services.fhir
    patient = fhir.read("Patient", ids["patient"], ctx=AS_LOCAL_OPERATOR).body
    assert patient is not None
    assert patient["name"][0]["given"] == [GIVEN]
    assert patient["identifier"][0]["value"] == NIR
    assert NARRATIVE in patient["text"]["div"]
    note = fhir.read("Observation", ids["observation"], ctx=AS_LOCAL_OPERATOR).body
    assert note is not None
    assert note["note"][0]["text"] == NOTE
    doc = fhir.read("DocumentReference", ids["document"], ctx=AS_LOCAL_OPERATOR).body
    assert doc is not None
    assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == PDF_BYTES
    binary = fhir.read("Binary", ids["binary"], ctx=AS_LOCAL_OPERATOR).body
    assert binary is not None
    assert base64.b64decode(binary["data"]).decode() == BINARY_TEXT
    # Search by name, identifier and phone works through the blind indexes.
    for params in (
        [("name", "eloise")],
        [("family", "QUINTRAND")],
        [("identifier", f"{NIR_SYSTEM}|{NIR}")],
        [("telecom", PHONE)],
        [("address", "14 impasse des glycines")],
        [("address-city", "saint-barthelemy")],
    ):
        found = fhir.search(
            BASE, "Patient", [*params, ("_summary", "count")], ctx=AS_LOCAL_OPERATOR
        )
        assert found["total"] == 1, params


def test_scan_control_finds_a_clear_marker(tmp_path: Path) -> None:
    root = tmp_path / "control"
    root.mkdir()
    (root / "plain.txt").write_bytes(b"header\x00" + FULL_NAME.encode() + b"\x00trailer")
    (root / "nested").mkdir()
    (root / "nested" / "utf16.bin").write_bytes(PDF_MARKER.lower().encode("utf-16-le"))
    (root / "nfd.txt").write_bytes(unicodedata.normalize("NFD", GIVEN.upper()).encode())
    hits = scan(root, _needles())
    assert "plain.txt: full name" in hits
    assert "plain.txt: given name" in hits
    assert "nested/utf16.bin: pdf marker" in hits
    assert "nfd.txt: given name" in hits


def test_nothing_in_clear_while_open(loaded: tuple[Services, dict[str, str]]) -> None:
    services, _ids = loaded
    data_dir = services.settings.data_dir
    wal = data_dir / "carnet.sqlite3-wal"
    assert wal.exists()
    assert wal.stat().st_size > 0, "the writes should still be in the WAL"
    blobs = [p for p in services.settings.blob_dir.rglob("*") if p.is_file()]
    assert len(blobs) == 2  # the PDF and the Binary
    assert not [p for p in blobs if p.suffix == ".tmp"]
    # Control: the scan does read the database files (codes are indexed in clear by design).
    db_files = [p for p in data_dir.iterdir() if p.name.startswith("carnet.sqlite3")]
    assert any(LOINC_HEIGHT.encode() in p.read_bytes() for p in db_files)
    assert scan(data_dir, _needles()) == []


def test_nothing_in_clear_after_close(loaded: tuple[Services, dict[str, str]]) -> None:
    services, _ids = loaded
    services.close()
    data_dir = services.settings.data_dir
    files = sorted(p.name for p in data_dir.iterdir() if p.is_file())
    assert "carnet.sqlite3" in files
    assert "master.key" in files
    assert (data_dir / "carnet.sqlite3").read_bytes().count(LOINC_HEIGHT.encode()) > 0
    assert scan(data_dir, _needles()) == []


def test_nothing_in_clear_after_delete_and_vacuum_free_pages(
    loaded: tuple[Services, dict[str, str]],
) -> None:
    """Deleting and updating leave old pages behind; they held only ciphertext and hashes."""
    services, ids = loaded
    fhir = services.fhir
    fhir.delete("Observation", ids["observation"], ctx=AS_LOCAL_OPERATOR)
    fhir.delete("DocumentReference", ids["document"], ctx=AS_LOCAL_OPERATOR)
    fhir.update(
        "Patient",
        ids["patient"],
        {**_patient(), "id": ids["patient"], "active": False},
        ctx=AS_LOCAL_OPERATOR,
    )
    services.close()
    assert scan(services.settings.data_dir, _needles()) == []


# -- file modes ---------------------------------------------------------------------------------


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The default umask of most services (0022): modes must not depend on it."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_data_files_are_0600_in_0700_folders(loose_umask: None, tmp_path: Path) -> None:
    """After writes, attachments and a bulk export, every file under the data directory (database,
    -wal, -shm, key, blobs, export files) is 0600 and every folder 0700, the directory included."""

    services = build_services(make_settings(tmp_path / "data"))
    try:
        _load_sensitive(services)
        export = services.bulk_export
        job = export.kickoff(AS_LOCAL_OPERATOR, "urn:b", "urn:b/$export", "system", [])
        export.runner.wait(job, timeout=30)
        assert export.status(job, AS_LOCAL_OPERATOR).status == 200
        data_dir = services.settings.data_dir
        names = {p.name for p in data_dir.iterdir()}
        assert {"carnet.sqlite3", "carnet.sqlite3-wal", "carnet.sqlite3-shm"} <= names
        assert [p for p in (data_dir / "exports" / job).iterdir() if p.is_file()]
        assert [p for p in services.settings.blob_dir.rglob("*") if p.is_file()]
        paths = [data_dir, *data_dir.rglob("*")]
        loose = [
            f"{p.relative_to(tmp_path)} {stat.S_IMODE(p.stat().st_mode):o}"
            for p in paths
            if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)
        ]
        assert loose == []
    finally:
        services.close()


def test_existing_database_files_are_tightened_on_open(loose_umask: None, tmp_path: Path) -> None:
    """A database created by an earlier version (0644) is made 0600 when Carnet opens it."""
    services = build_services(make_settings(tmp_path / "data"))
    services.close()
    database = services.settings.data_dir / "carnet.sqlite3"
    database.chmod(0o644)
    again = build_services(make_settings(tmp_path / "data"))
    try:
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
    finally:
        again.close()


# -- crypto-shredding ---------------------------------------------------------------------------


@pytest.fixture
def two_patients(sqlite_services: Services) -> dict[str, Any]:
    fhir = sqlite_services.fhir
    a = fhir.create("Patient", _patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    b = fhir.create(
        "Patient",
        {"resourceType": "Patient", "name": [{"family": "Martin", "given": ["Paul"]}]},
        ctx=AS_LOCAL_OPERATOR,
    ).stored.res_id
    a_obs = [
        fhir.create("Observation", _observation(a, v), ctx=AS_LOCAL_OPERATOR).stored.res_id
        for v in (160.0, 161.0)
    ]
    b_obs = [
        fhir.create("Observation", _observation(b, v), ctx=AS_LOCAL_OPERATOR).stored.res_id
        for v in (180.0, 181.0)
    ]
    b_pdf = PDF_BYTES.replace(PDF_MARKER.encode(), b"PATIENT-B-REPORT")
    a_doc = fhir.create("DocumentReference", _document(a), ctx=AS_LOCAL_OPERATOR).stored.res_id
    b_doc = fhir.create(
        "DocumentReference", _document(b, b_pdf), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    with fhir.repo.unit() as unit:
        assert unit.destroy_patient_key(a) is True
    return {
        "a": a,
        "b": b,
        "a_obs": a_obs,
        "b_obs": b_obs,
        "a_doc": a_doc,
        "b_doc": b_doc,
        "b_pdf": b_pdf,
    }


def _assert_erased(call: Any, *args: Any) -> None:
    with pytest.raises(FhirError) as info:
        call(*args, ctx=AS_LOCAL_OPERATOR)
    assert info.value.status == 410
    assert "erased" in str(info.value)


def test_shredded_patient_reads_are_gone(
    sqlite_services: Services, two_patients: dict[str, Any]
) -> None:
    """Reading a shredded resource is a 410 Gone ('erased'), for every version."""
    fhir = sqlite_services.fhir
    p = two_patients
    _assert_erased(fhir.read, "Patient", p["a"])
    for obs in p["a_obs"]:
        _assert_erased(fhir.read, "Observation", obs)
    _assert_erased(fhir.read, "DocumentReference", p["a_doc"])
    _assert_erased(fhir.vread, "Patient", p["a"], "1")


def test_other_patient_still_readable(
    sqlite_services: Services, two_patients: dict[str, Any]
) -> None:
    fhir = sqlite_services.fhir
    p = two_patients
    b = fhir.read("Patient", p["b"], ctx=AS_LOCAL_OPERATOR).body
    assert b is not None
    assert b["name"][0]["family"] == "Martin"
    values = sorted(
        fhir.read("Observation", o, ctx=AS_LOCAL_OPERATOR).body["valueQuantity"]["value"]
        for o in p["b_obs"]
    )  # type: ignore[index]
    assert values == [180.0, 181.0]
    doc = fhir.read("DocumentReference", p["b_doc"], ctx=AS_LOCAL_OPERATOR).body
    assert doc is not None
    assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == p["b_pdf"]
    found = fhir.search(
        BASE, "Observation", [("subject", f"Patient/{p['b']}")], ctx=AS_LOCAL_OPERATOR
    )
    assert found["total"] == 2
    assert {e["resource"]["id"] for e in found["entry"]} == set(p["b_obs"])


def test_shredded_blobs_unreadable(sqlite_services: Services, two_patients: dict[str, Any]) -> None:
    p = two_patients
    blobs = sqlite_services.fhir.repo.blobs
    a_owner, b_owner = DataKeys.owner_for(p["a"]), DataKeys.owner_for(p["b"])
    a_digest = hashlib.sha256(PDF_BYTES).hexdigest()
    b_digest = hashlib.sha256(p["b_pdf"]).hexdigest()
    with sqlite_services.fhir.repo.unit(write=False) as unit:
        assert blobs._path(a_owner, a_digest).exists()  # the file stays; its key is gone
        with pytest.raises(KeyDestroyedError):
            blobs.read(unit.conn, a_owner, a_digest)
        assert blobs.read(unit.conn, b_owner, b_digest) == p["b_pdf"]


def test_shredded_rows_are_ciphertext_without_key(
    sqlite_services: Services, two_patients: dict[str, Any]
) -> None:
    p = two_patients
    with sqlite_services.fhir.repo.unit(write=False) as unit:
        rows = {(t, i): body for t, i, _v, body in raw_bodies(unit)}
        keys = {
            r.owner: r.wrapped
            for r in unit.conn.execute(select(data_key.c.owner, data_key.c.wrapped))
        }
    assert rows[("Patient", p["a"])] is not None  # still there, but undecipherable
    assert keys[f"patient:{p['a']}"] is None
    assert keys[f"patient:{p['b']}"] is not None
    status = sqlite_services.crypto.status(sqlite_services.engine, sqlite_services.settings)
    assert status.data_keys_destroyed == 1


def test_shredded_patient_cannot_be_written_again(
    sqlite_services: Services, two_patients: dict[str, Any]
) -> None:
    """New data for a shredded compartment is refused rather than encrypted under a new key."""
    _assert_erased(
        sqlite_services.fhir.create, "Observation", _observation(two_patients["a"], 150.0)
    )


def test_search_across_patients_after_shredding(
    sqlite_services: Services, two_patients: dict[str, Any]
) -> None:
    found = sqlite_services.fhir.search(
        BASE, "Observation", [("code", LOINC_HEIGHT)], ctx=AS_LOCAL_OPERATOR
    )
    ids = {e["resource"]["id"] for e in found.get("entry", [])}
    assert set(two_patients["b_obs"]) <= ids
    assert not ids & set(two_patients["a_obs"])


def test_shredded_read_over_http(sqlite_services: Services, two_patients: dict[str, Any]) -> None:
    app = create_app(sqlite_services.settings, sqlite_services)
    with TestClient(
        app,
        base_url="http://127.0.0.1",
        raise_server_exceptions=False,
        headers=bearer(sqlite_services),
    ) as client:
        ok = client.get(f"/fhir/Patient/{two_patients['b']}")
        assert ok.status_code == 200
        gone = client.get(f"/fhir/Patient/{two_patients['a']}")
        assert gone.status_code == 410
        assert gone.json()["resourceType"] == "OperationOutcome"


def test_shredding_applies_to_other_processes(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    migrated_sqlite.copy_into(tmp_path / "data")
    settings = make_settings(tmp_path / "data")
    first = build_services(settings, migrate=False)
    second = build_services(settings)  # e.g. another uvicorn worker on the same database
    try:
        pid = first.fhir.create("Patient", _patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
        assert (
            second.fhir.read("Patient", pid, ctx=AS_LOCAL_OPERATOR).body is not None
        )  # warms second's key cache
        with first.fhir.repo.unit() as unit:
            unit.destroy_patient_key(pid)
        _assert_erased(first.fhir.read, "Patient", pid)
        _assert_erased(second.fhir.read, "Patient", pid)
    finally:
        first.close()
        second.close()


# -- master key file ------------------------------------------------------------------------------


def test_key_file_created_0600(sqlite_services: Services) -> None:
    key_file = sqlite_services.settings.key_file
    assert key_file == sqlite_services.settings.data_dir / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.stat().st_size == 32
    status = sqlite_services.crypto.status(sqlite_services.engine, sqlite_services.settings)
    assert status.file_mode == "600"


def test_key_file_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        FileKeyring(tmp_path / "k" / "master.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k" / "master.key").stat().st_mode) == 0o600


def test_key_is_stable_across_restarts(tmp_path: Path, migrated_sqlite: SqliteTemplate) -> None:
    migrated_sqlite.copy_into(tmp_path / "data")
    settings = make_settings(tmp_path / "data")
    first = build_services(settings, migrate=False)  # the store's first start: its key is made
    pid = first.fhir.create("Patient", _patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    key_id = first.crypto.keyring.key_id
    first.close()
    again = build_services(settings)
    try:
        assert again.crypto.keyring.key_id == key_id
        assert again.fhir.read("Patient", pid, ctx=AS_LOCAL_OPERATOR).body is not None
    finally:
        again.close()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_file_readable_by_others_is_refused(
    tmp_path: Path, migrated_sqlite: SqliteTemplate, mode: int
) -> None:
    migrated_sqlite.copy_into(tmp_path / "data")
    settings = make_settings(tmp_path / "data")
    build_services(settings, migrate=False).close()  # the store's first start: its key is made
    settings.key_file.chmod(mode)
    with pytest.raises(KeyringError, match=rf"readable by others \(mode {mode:o}\)"):
        build_services(settings)


def test_key_file_of_wrong_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(KeyringError, match="32-byte key"):
        FileKeyring(path)


def test_missing_key_file_without_create_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="not found"):
        FileKeyring(tmp_path / "absent.key", create=False)
