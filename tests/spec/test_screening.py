"""Screening on the FHIR write path (carnet/screening): every attachment of a Binary, a
DocumentReference, a transaction entry or a deposit held for identity vigilance is screened before
anything is written. A refused file is a 422 OperationOutcome with its screening code, is stored
nowhere (no resource, no blob, no quarantine row), and its refusal is in the audit log."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from carnet.app import Services
from carnet.identity.ins import INS_NIR_OID
from carnet.identity.models import quarantine
from carnet.identity.nir import make_nir
from tests.spec.helpers import FHIR_JSON, patient
from tests.support import hostile_files
from tests.support.audit_log import logged_events

UNKNOWN_NIR = make_nir(2, 1990, 1, "13055", 7)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _blobs(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _document(subject: dict[str, Any], attachment: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": subject,
        "content": [{"attachment": attachment}],
    }


def _refused(response: Any, code: str, expression: str) -> None:
    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert issue["diagnostics"].startswith(f"file refused ({code}): "), issue
    assert issue["expression"] == [expression], issue


def test_a_refused_file_is_422_stored_nowhere_and_its_refusal_audited(
    client: TestClient, services: Services
) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    before = len(logged_events(services))
    raw = client.post(
        "/fhir/Binary",
        content=hostile_files.pdf_with_javascript(),
        headers={"Content-Type": "application/pdf"},
    )
    _refused(raw, "pdf-javascript", "Binary.data")
    disguised = _document(
        {"reference": f"Patient/{pid}"},
        {"contentType": "application/pdf", "data": b64(hostile_files.executable_named_pdf())},
    )
    as_document = client.post("/fhir/DocumentReference", json=disguised, headers=FHIR_JSON)
    _refused(as_document, "executable", "DocumentReference.content[0].attachment.data")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "image/png",
                    "data": b64(hostile_files.decompression_bomb_png()),
                },
                "request": {"method": "POST", "url": "Binary"},
            }
        ],
    }
    in_bundle = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert in_bundle.status_code == 422, in_bundle.text
    assert "decompression-bomb" in in_bundle.text
    refusals = [(e["action"], e["outcome"], e["rule"]) for e in logged_events(services)[before:]]
    assert client.get("/fhir/_history").json()["total"] == 1  # the Patient only
    assert _blobs(services.settings.blob_dir) == []
    assert refusals == [
        ("create", 422, "screening-pdf-javascript"),
        ("create", 422, "screening-executable"),
        ("transaction", 422, "screening-decompression-bomb"),
    ]


def test_a_deposit_for_an_unknown_identity_is_screened_before_quarantine(
    client: TestClient, services: Services
) -> None:
    by_ins = {"type": "Patient", "identifier": {"system": INS_NIR_OID, "value": UNKNOWN_NIR}}
    hostile = _document(
        by_ins,
        {"contentType": "application/pdf", "data": b64(hostile_files.pdf_with_launch_action())},
    )
    r = client.post("/fhir/DocumentReference", json=hostile, headers=FHIR_JSON)
    _refused(r, "pdf-launch", "DocumentReference.content[0].attachment.data")
    with services.engine.connect() as conn:
        assert conn.execute(select(quarantine)).first() is None
    clean = _document(
        by_ins, {"contentType": "application/pdf", "data": b64(hostile_files.clean_pdf())}
    )
    held = client.post("/fhir/DocumentReference", json=clean, headers=FHIR_JSON)
    assert held.status_code == 202, held.text  # the control: a clean one is held as before


def test_the_stored_copy_of_a_photo_has_no_gps_and_its_size_is_the_stored_one(
    client: TestClient,
) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    photo = hostile_files.png_with_gps_exif()
    sent = _document(
        {"reference": f"Patient/{pid}"},
        {"contentType": "image/png", "data": b64(photo), "size": len(photo)},
    )
    r = client.post("/fhir/DocumentReference", json=sent, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    read = client.get(f"/fhir/DocumentReference/{r.json()['id']}").json()
    attachment = read["content"][0]["attachment"]
    stored = base64.b64decode(attachment["data"])
    assert attachment["size"] == len(stored) != len(photo)
    with Image.open(io.BytesIO(stored)) as image:
        assert not image.getexif()
    assert b"CarnetTestCamera" not in stored
