"""Patient/{id}/$summary: an IPS document Bundle shaped like the IPS examples, valid, self-contained."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services
from carnet.fhir.importer import Importer
from tests.conftest import CORPUS
from tests.spec.helpers import FHIR_JSON, patient
from tests.support.caller import AS_LOCAL_OPERATOR

REQUIRED = {"10160-0", "48765-2", "11450-4"}
SYNTHEA = sorted((CORPUS / "synthea").glob("*.json.gz"))


def _sections(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    composition = bundle["entry"][0]["resource"]
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


def _unresolved(bundle: dict[str, Any]) -> list[str]:
    """References anywhere in the Bundle that name no entry of it."""
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    bases = {u.rsplit("/", 2)[0] for u in full_urls if not u.startswith("urn:")}
    missing = []
    for entry in bundle["entry"]:
        raw = orjson.dumps(entry["resource"]).decode()
        for ref in re.findall(r'"reference":"([^"]+)"', raw):
            if ref.startswith("#"):
                continue
            if ref in full_urls or any(f"{b}/{ref}" in full_urls for b in bases):
                continue
            missing.append(ref)
    return missing


def test_summary_of_a_synthea_patient(client: TestClient, services: Services) -> None:
    source = next(p for p in SYNTHEA if p.stat().st_size > 150_000)
    report = Importer(services.fhir, ctx=AS_LOCAL_OPERATOR).run([source])
    assert report.stored > 50
    pid = services.fhir.search("urn:t", "Patient", [], ctx=AS_LOCAL_OPERATOR)["entry"][0][
        "resource"
    ]["id"]

    response = client.get(f"/fhir/Patient/{pid}/$summary")
    assert response.status_code == 200, response.text
    bundle = response.json()
    services.fhir.validator.validate(bundle)  # every entry through the R4 schema

    assert bundle["type"] == "document"
    assert bundle["identifier"]["value"].startswith("urn:uuid:")
    assert bundle["timestamp"]
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "60591-5",
        "display": "Patient summary Document",
    }
    assert composition["title"] == "Patient Summary"
    assert composition["subject"]["reference"].endswith(f"Patient/{pid}")
    sections = _sections(bundle)
    assert set(sections) >= REQUIRED
    assert "11369-6" in sections  # every Synthea patient has immunizations
    for section in sections.values():
        assert section["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        assert ("entry" in section) != ("emptyReason" in section)
    assert _unresolved(bundle) == []
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "Immunization", "Device"} <= types
    # Entries of a section are of the section's types.
    for ref in sections["11369-6"]["entry"]:
        assert "/Immunization/" in ref["reference"]


def test_summary_with_nothing_to_say_uses_empty_reason(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    response = client.post(f"/fhir/Patient/{pid}/$summary")
    assert response.status_code == 200
    bundle = response.json()
    sections = _sections(bundle)
    assert set(sections) == REQUIRED  # optional sections only when there is something
    ips = orjson.loads(
        (CORPUS / "ips" / "Bundle-bundle-no-info-required-sections.json").read_bytes()
    )
    expected = {
        s["code"]["coding"][0]["code"]: s["emptyReason"]["coding"][0]["code"]
        for s in ips["entry"][0]["resource"]["section"]
        if "emptyReason" in s
    }
    assert {code: s["emptyReason"]["coding"][0]["code"] for code, s in sections.items()} == expected
    assert all("entry" not in s for s in sections.values())
    author = bundle["entry"][0]["resource"]["author"][0]["reference"]
    device = next(e for e in bundle["entry"] if e["fullUrl"] == author)
    assert device["resource"]["resourceType"] == "Device"
    assert _unresolved(bundle) == []


def test_summary_narrative_is_escaped(client: TestClient, services: Services) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"text": "<script>alert(1)</script> & co"},
    }
    assert client.post("/fhir/Condition", json=condition, headers=FHIR_JSON).status_code == 201
    bundle = client.get(f"/fhir/Patient/{pid}/$summary").json()
    services.fhir.validator.validate(bundle)
    div = _sections(bundle)["11450-4"]["text"]["div"]
    assert "<script>" not in div
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in div


def test_summary_unknown_patient_is_404(client: TestClient) -> None:
    response = client.get("/fhir/Patient/unknown/$summary")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "name", ["Bundle-bundle-minimal.json", "Bundle-IPS-examples-Bundle-01.json"]
)
def test_reference_examples_pass_the_same_checks(name: str, sqlite_services: Services) -> None:
    """Control: the IPS examples themselves pass the checks applied to our summaries."""
    bundle = orjson.loads((Path(CORPUS) / "ips" / name).read_bytes())
    sqlite_services.fhir.validator.validate(bundle)
    assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    assert set(_sections(bundle)) >= REQUIRED
