"""Attachment content (Binary, DocumentReference.content.attachment): moved to the encrypted blob
store on write, restored byte for byte on read, refused when it is not what it claims to be."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carnet.app import Services, build_services, create_app
from carnet.fhir.store_scan import raw_bodies
from carnet.settings import Settings
from tests.spec.helpers import FHIR_JSON, patient
from tests.support import hostile_files
from tests.support.auth import bearer
from tests.support.caller import AS_LOCAL_OPERATOR

# Real files: deposits are screened (carnet/screening), so a PDF must parse and a PNG decode. A
# PNG that Pillow wrote without metadata is stored as it came (its re-encoding is the same bytes).
PDF = hostile_files.clean_pdf()
PNG = hostile_files.png_without_metadata()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def history_total(client: TestClient, path: str = "/fhir/_history") -> int:
    return int(client.get(path).json()["total"])


def document(patient_id: str, *attachments: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{patient_id}"},
        "content": [{"attachment": a} for a in attachments],
    }


def assert_422(r: Any, expression: str, diagnostics: str) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert any(expression in i.get("expression", []) for i in body["issue"]), body
    assert any(diagnostics in i["diagnostics"] for i in body["issue"]), body


def blob_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def new_patient(client: TestClient) -> str:
    r = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)
    assert r.status_code == 201
    return str(r.json()["id"])


# -- Binary ----------------------------------------------------------------------------------


def test_binary_json_round_trip_is_byte_identical(client: TestClient) -> None:
    data = PDF  # binary bytes (its second line is a comment of high bytes), stored as they came
    r = client.post(
        "/fhir/Binary",
        json={
            "resourceType": "Binary",
            "contentType": "application/pdf",
            "data": b64(data),
        },
        headers=FHIR_JSON,
    )
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    read = client.get(f"/fhir/Binary/{bid}").json()
    assert read["resourceType"] == "Binary"
    assert read["contentType"] == "application/pdf"
    assert base64.b64decode(read["data"]) == data
    raw = client.get(f"/fhir/Binary/{bid}", headers={"Accept": "application/octet-stream"})
    assert raw.status_code == 200
    assert raw.content == data
    assert raw.headers["content-type"].startswith("application/pdf")
    assert raw.headers["ETag"] == 'W/"1"'
    # vread restores the content too
    assert base64.b64decode(client.get(f"/fhir/Binary/{bid}/_history/1").json()["data"]) == data


def test_binary_raw_upload_and_raw_download(client: TestClient) -> None:
    r = client.post("/fhir/Binary", content=PDF, headers={"Content-Type": "application/pdf"})
    assert r.status_code == 201, r.text
    assert r.headers["Location"].startswith("Binary/")
    bid = r.json()["id"]
    raw = client.get(f"/fhir/Binary/{bid}", headers={"Accept": "application/pdf"})
    assert raw.status_code == 200
    assert raw.content == PDF
    assert raw.headers["content-type"].startswith("application/pdf")
    as_json = client.get(f"/fhir/Binary/{bid}", headers={"Accept": "application/fhir+json"})
    assert as_json.json()["contentType"] == "application/pdf"
    assert base64.b64decode(as_json.json()["data"]) == PDF


def test_binary_content_is_encrypted_at_rest(client: TestClient, services: Services) -> None:
    marker = b"CARNET-SECRET-" + os.urandom(8).hex().encode()
    text = marker * 20
    r = client.post(
        "/fhir/Binary", content=text, headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    assert r.status_code == 201, r.text
    files = blob_files(services.settings.blob_dir)
    assert files, "the content must be in the blob store"
    for f in files:
        stored = f.read_bytes()
        assert marker not in stored
        assert b64(marker).encode()[:16] not in stored
    # and not in the database rows either
    with services.fhir.repo.unit(write=False) as unit:
        for *_, body in raw_bodies(unit):
            assert body is None or marker not in body
    raw = client.get(f"/fhir/Binary/{r.json()['id']}", headers={"Accept": "text/plain"})
    assert raw.content == text


def test_binary_update_keeps_each_version_content(client: TestClient) -> None:
    first = client.post(
        "/fhir/Binary",
        json={"resourceType": "Binary", "contentType": "text/plain", "data": b64(b"version one")},
        headers=FHIR_JSON,
    ).json()
    bid = first["id"]
    second = {
        "resourceType": "Binary",
        "id": bid,
        "contentType": "text/plain",
        "data": b64(b"version two"),
    }
    assert client.put(f"/fhir/Binary/{bid}", json=second, headers=FHIR_JSON).status_code == 200
    v1 = client.get(f"/fhir/Binary/{bid}/_history/1").json()
    assert base64.b64decode(v1["data"]) == b"version one"
    assert base64.b64decode(client.get(f"/fhir/Binary/{bid}").json()["data"]) == b"version two"


def test_binary_without_data_is_accepted(client: TestClient) -> None:
    r = client.post(
        "/fhir/Binary",
        json={"resourceType": "Binary", "contentType": "text/plain"},
        headers=FHIR_JSON,
    )
    assert r.status_code == 201, r.text
    assert "data" not in client.get(f"/fhir/Binary/{r.json()['id']}").json()


# -- DocumentReference ---------------------------------------------------------------------------


def test_document_reference_attachments_round_trip_with_size(client: TestClient) -> None:
    pid = new_patient(client)
    doc = document(
        pid,
        {"contentType": "application/pdf", "data": b64(PDF), "title": "CR"},
        {"contentType": "image/png", "data": b64(PNG)},
    )
    r = client.post("/fhir/DocumentReference", json=doc, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    read = client.get(f"/fhir/DocumentReference/{r.json()['id']}").json()
    first, second = (c["attachment"] for c in read["content"])
    assert base64.b64decode(first["data"]) == PDF
    assert first["size"] == len(PDF)
    assert first["title"] == "CR"
    assert base64.b64decode(second["data"]) == PNG
    assert second["size"] == len(PNG)
    assert not any(k.startswith("_carnet") for c in read["content"] for k in c["attachment"])
    # the document is still found by search, with its content
    found = client.get("/fhir/DocumentReference", params={"patient": pid}).json()
    assert (
        base64.b64decode(found["entry"][0]["resource"]["content"][0]["attachment"]["data"]) == PDF
    )


def test_a_search_without_attachment_data_lists_metadata_and_reads_no_file(
    client: TestClient, services: Services
) -> None:
    """A list page asks for documents without their data: each attachment keeps its type,
    title and size, carries neither data nor the store's internal reference, and no blob file
    is read (they are moved away here: reading one would fail)."""
    pid = new_patient(client)
    doc = document(pid, {"contentType": "application/pdf", "data": b64(PDF), "title": "CR"})
    assert client.post("/fhir/DocumentReference", json=doc, headers=FHIR_JSON).status_code == 201
    blobs = services.settings.blob_dir
    aside = blobs.with_name("blobs-aside")
    blobs.rename(aside)
    try:
        found = services.fhir.search(
            "",
            "DocumentReference",
            [("patient", pid)],
            attachment_data=False,
            ctx=AS_LOCAL_OPERATOR,
        )
    finally:
        aside.rename(blobs)
    attachment = found["entry"][0]["resource"]["content"][0]["attachment"]
    assert attachment == {"contentType": "application/pdf", "title": "CR", "size": len(PDF)}
    # the default still carries the data
    full = services.fhir.search("", "DocumentReference", [("patient", pid)], ctx=AS_LOCAL_OPERATOR)
    assert base64.b64decode(full["entry"][0]["resource"]["content"][0]["attachment"]["data"]) == PDF


def test_attachment_size_given_by_client_is_kept(client: TestClient) -> None:
    pid = new_patient(client)
    doc = document(pid, {"contentType": "application/pdf", "data": b64(PDF), "size": len(PDF)})
    r = client.post("/fhir/DocumentReference", json=doc, headers=FHIR_JSON)
    read = client.get(f"/fhir/DocumentReference/{r.json()['id']}").json()
    assert read["content"][0]["attachment"]["size"] == len(PDF)


def test_document_reference_create_response_is_what_was_stored(client: TestClient) -> None:
    pid = new_patient(client)
    doc = document(pid, {"contentType": "application/pdf", "data": b64(PDF)})
    r = client.post("/fhir/DocumentReference", json=doc, headers=FHIR_JSON)
    assert r.json() == client.get(f"/fhir/DocumentReference/{r.json()['id']}").json()


def test_attachment_in_transaction_round_trips(client: TestClient) -> None:
    p_urn = "urn:uuid:6b1f5a3e-9c51-4e0f-8a3f-7f5e4c0d2a11"
    body = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": p_urn,
                "resource": patient(),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    **document("x", {"contentType": "application/pdf", "data": b64(PDF)}),
                    "subject": {"reference": p_urn},
                },
                "request": {"method": "POST", "url": "DocumentReference"},
            },
        ],
    }
    out = client.post("/fhir", json=body, headers=FHIR_JSON)
    assert out.status_code == 200, out.text
    doc_id = out.json()["entry"][1]["response"]["location"].split("/")[1]
    read = client.get(f"/fhir/DocumentReference/{doc_id}").json()
    assert base64.b64decode(read["content"][0]["attachment"]["data"]) == PDF


# -- refused content -----------------------------------------------------------------------------


BAD_CONTENT: list[tuple[str, str, str, str]] = [
    # (contentType, base64 text, expression suffix, diagnostics)
    ("application/pdf", "!!!not base64!!!", "data", "base64"),
    ("application/pdf", "JVBER", "data", "base64"),  # truncated
    ("application/pdf", b64(b"<html>not a pdf</html>"), "contentType", "contentType"),
    ("image/png", b64(PDF), "contentType", "contentType"),
    ("image/jpeg", b64(PNG), "contentType", "contentType"),
    ("text/plain", b64(b"\xff\xfe\xfa invalid utf-8"), "contentType", "contentType"),
    ("application/xml", b64(b"%PDF-1.4"), "contentType", "contentType"),
]


def test_bad_binary_content_is_422_and_stores_nothing(
    client: TestClient, services: Services
) -> None:
    for content_type, data, suffix, diagnostics in BAD_CONTENT:
        r = client.post(
            "/fhir/Binary",
            json={"resourceType": "Binary", "contentType": content_type, "data": data},
            headers=FHIR_JSON,
        )
        assert_422(r, f"Binary.{suffix}", diagnostics)
    # raw upload of bytes that are not what the Content-Type says
    r = client.post("/fhir/Binary", content=b"hello", headers={"Content-Type": "application/pdf"})
    assert_422(r, "Binary.contentType", "application/pdf")
    assert history_total(client) == 0
    assert blob_files(services.settings.blob_dir) == []


def test_bad_document_content_is_422_and_stores_nothing(client: TestClient) -> None:
    pid = new_patient(client)
    for content_type, data, suffix, diagnostics in BAD_CONTENT:
        doc = document(
            pid,
            {"contentType": "text/plain", "data": b64(b"fine")},
            {"contentType": content_type, "data": data},
        )
        r = client.post("/fhir/DocumentReference", json=doc, headers=FHIR_JSON)
        assert_422(r, f"DocumentReference.content[1].attachment.{suffix}", diagnostics)
    assert history_total(client) == 1
    assert history_total(client, "/fhir/DocumentReference/_history") == 0


def test_bad_attachment_in_transaction_rolls_back(client: TestClient) -> None:
    body = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": document("x", {"contentType": "application/pdf", "data": b64(b"no")}),
                "request": {"method": "POST", "url": "DocumentReference"},
            },
        ],
    }
    r = client.post("/fhir", json=body, headers=FHIR_JSON)
    assert r.status_code == 422, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert any("contentType" in i["diagnostics"] for i in r.json()["issue"])
    assert history_total(client) == 0


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    limited = settings.with_(max_attachment_bytes=1024)
    services = build_services(limited)
    try:
        with TestClient(
            create_app(limited, services), base_url="http://127.0.0.1", headers=bearer(services)
        ) as c:
            yield c
    finally:
        services.close()


def test_attachment_larger_than_limit_is_422(small_limit_client: TestClient) -> None:
    client = small_limit_client
    at_limit = hostile_files.pdf_of_size(1024)
    over = hostile_files.pdf_of_size(1025)
    ok = client.post(
        "/fhir/Binary",
        json={"resourceType": "Binary", "contentType": "application/pdf", "data": b64(at_limit)},
        headers=FHIR_JSON,
    )
    assert ok.status_code == 201, ok.text
    r = client.post(
        "/fhir/Binary",
        json={"resourceType": "Binary", "contentType": "application/pdf", "data": b64(over)},
        headers=FHIR_JSON,
    )
    assert_422(r, "Binary.data", "1024")
    r = client.post("/fhir/Binary", content=over, headers={"Content-Type": "application/pdf"})
    assert_422(r, "Binary.data", "1024")
    pid = new_patient(client)
    doc = document(pid, {"contentType": "application/pdf", "data": b64(over)})
    r = client.post("/fhir/DocumentReference", json=doc, headers=FHIR_JSON)
    assert_422(r, "DocumentReference.content[0].attachment.data", "1024")
    assert history_total(client) == 2  # the Binary at the limit and the Patient


# -- property: any bytes round-trip ---------------------------------------------------------------


@pytest.fixture
def sqlite_client(sqlite_services: Services) -> Iterator[TestClient]:
    with TestClient(
        create_app(sqlite_services.settings, sqlite_services),
        base_url="http://127.0.0.1",
        headers=bearer(sqlite_services),
    ) as c:
        yield c


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.one_of(st.binary(max_size=4096), st.text(max_size=2000).map(str.encode)))
def test_any_bytes_are_stored_byte_for_byte_or_refused_with_a_reason(
    sqlite_client: TestClient, data: bytes
) -> None:
    r = sqlite_client.post("/fhir/Binary", content=data, headers={"Content-Type": "text/plain"})
    if r.status_code == 422:  # screening: not text (or an archive, an executable)
        assert r.json()["issue"][0]["diagnostics"].startswith("file refused ("), r.text
        return
    assert r.status_code == 201, r.text
    raw = sqlite_client.get(
        f"/fhir/Binary/{r.json()['id']}", headers={"Accept": "application/octet-stream"}
    )
    assert raw.content == data


def test_a_blob_directory_reused_with_another_database_stays_readable(tmp_path: Path) -> None:
    """Blobs are stored once per owner and content; one left by another database (sealed under
    a data key this one does not hold) is sealed afresh, not reused and left unreadable."""
    data_dir = tmp_path / "data"
    body = {
        "resourceType": "Binary",
        "id": "same-content",
        "contentType": "text/plain",
        "data": base64.b64encode(b"identical bytes").decode(),
    }
    for database in ("first", "second"):
        settings = Settings.from_env(
            {}, data_dir=str(data_dir), database_url=f"sqlite:///{tmp_path / database}.sqlite3"
        )
        services = build_services(settings)
        try:
            services.fhir.update("Binary", "same-content", dict(body), ctx=AS_LOCAL_OPERATOR)
            stored = services.fhir.read("Binary", "same-content", ctx=AS_LOCAL_OPERATOR)
            assert stored.body is not None
            assert base64.b64decode(stored.body["data"]) == b"identical bytes"
        finally:
            services.close()
