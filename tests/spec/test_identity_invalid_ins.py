"""An INS identifier that breaks the NIR/NIA rules is refused with 422 at every entry and never
stored (issue 12, section 1): POST and PUT of a Patient, a transaction Bundle holding one (the whole
Bundle refused), the importer and $import (that resource rejected with the rule, the others kept),
and a deposit naming its patient by such an INS or containing such a Patient. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services
from carnet.fhir.errors import FhirError
from carnet.fhir.importer import Importer
from carnet.identity.ins import INS_NIA_OID, INS_NIR_OID, Ins, InsStatus, Traits, apply_to_patient
from carnet.identity.nir import make_nir
from tests.spec.helpers import observation
from tests.support.caller import AS_LOCAL_OPERATOR

JEAN = Traits.create("Dupont", ["Jean", "Paul"], "1985-07-04", "M", "75056")
NIR = make_nir(1, 1985, 7, "75056", 12)

BROKEN = {
    "wrong key": NIR[:13] + f"{(int(NIR[13:]) % 97) + 1:02d}",
    "too short": NIR[:13],
    "too long": NIR + "0",
    "letters": NIR[:8] + "AB" + NIR[10:],
    "impossible month": NIR[:3] + "13" + NIR[5:13] + "00",
}


def _patient(value: str, system: str = INS_NIR_OID, **extra: Any) -> dict[str, Any]:
    body = apply_to_patient({"resourceType": "Patient", **extra}, JEAN, InsStatus.VALI, None)
    body["identifier"] = [{"system": system, "value": value}]
    return body


def _patients_stored(client: TestClient) -> int:
    found = client.get("/fhir/Patient", params={"_summary": "count"})
    assert found.status_code == 200, found.text
    return int(found.json()["total"])


def _refused(response: Any) -> str:
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    diagnostics = " ".join(i.get("diagnostics", "") for i in outcome["issue"])
    assert "INS" in diagnostics
    return diagnostics


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_patient_with_a_broken_ins_is_refused_and_not_stored(
    client: TestClient, services: Services, kind: str
) -> None:
    diagnostics = _refused(client.post("/fhir/Patient", json=_patient(BROKEN[kind])))
    assert BROKEN[kind] not in diagnostics  # the rule, never the number
    _refused(client.post("/fhir/Patient", json=_patient(BROKEN[kind], INS_NIA_OID)))
    assert _patients_stored(client) == 0
    assert services.identity.count() == 0


def test_an_update_bringing_a_broken_ins_is_refused(client: TestClient, services: Services) -> None:
    created = client.post("/fhir/Patient", json=_patient(NIR))
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    # The Patient already has an identity: the update is checked all the same.
    _refused(client.put(f"/fhir/Patient/{pid}", json=_patient(BROKEN["wrong key"], id=pid)))
    _refused(client.put("/fhir/Patient/newone", json=_patient(BROKEN["letters"], id="newone")))
    current = client.get(f"/fhir/Patient/{pid}").json()
    assert current["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/newone").status_code == 404
    assert services.identity.count() == 1


def test_a_transaction_with_a_broken_ins_stores_nothing(
    client: TestClient, services: Services
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b8f6a52-0000-4000-8000-000000000001",
                "resource": _patient(BROKEN["impossible month"]),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": observation("x")
                | {"subject": {"reference": "urn:uuid:0b8f6a52-0000-4000-8000-000000000001"}},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    _refused(client.post("/fhir", json=bundle))
    assert _patients_stored(client) == 0
    found = client.get("/fhir/Observation", params={"_summary": "count"})
    assert found.json()["total"] == 0
    assert services.identity.count() == 0


def test_the_importer_rejects_the_patient_by_its_path_and_keeps_the_others(
    services: Services, tmp_path: Path
) -> None:
    good = _patient(NIR, id="good")
    bad = _patient(BROKEN["wrong key"], id="bad")
    path = tmp_path / "Patient.ndjson"
    path.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps(bad) + b"\n")
    report = Importer(services.fhir, ctx=AS_LOCAL_OPERATOR).run([path])
    [rejection] = report.rejected
    assert rejection.source == "Patient.ndjson:2"
    assert rejection.status == 422
    assert rejection.reason == "value: Patient.identifier"  # the path, never the value
    assert services.fhir.read("Patient", "good", ctx=AS_LOCAL_OPERATOR).res_id == "good"
    assert services.identity.count() == 1
    with pytest.raises(FhirError) as missing:
        services.fhir.read("Patient", "bad", ctx=AS_LOCAL_OPERATOR)
    assert missing.value.status == 404


def test_a_deposit_naming_its_patient_by_a_broken_ins_is_refused(
    client: TestClient, services: Services
) -> None:
    by_identifier = observation("x")
    by_identifier["subject"] = {
        "type": "Patient",
        "identifier": {"system": INS_NIR_OID, "value": BROKEN["letters"]},
    }
    _refused(client.post("/fhir/Observation", json=by_identifier))
    contained = observation("x")
    contained["contained"] = [_patient(BROKEN["wrong key"], id="p")]
    contained["subject"] = {"reference": "#p"}
    _refused(client.post("/fhir/Observation", json=contained))
    # Even a contained Patient without strict traits is not stored with a broken INS.
    bare = observation("x")
    bare["contained"] = [
        {
            "resourceType": "Patient",
            "id": "p",
            "identifier": [{"system": INS_NIR_OID, "value": BROKEN["too short"]}],
        }
    ]
    bare["subject"] = {"reference": "#p"}
    _refused(client.post("/fhir/Observation", json=bare))
    found = client.get("/fhir/Observation", params={"_summary": "count"})
    assert found.json()["total"] == 0
    assert services.identity.vigilance.queue() == []


def test_a_valid_ins_still_comes_in(client: TestClient, services: Services) -> None:
    created = client.post("/fhir/Patient", json=_patient(NIR))
    assert created.status_code == 201, created.text
    assert Ins(INS_NIR_OID, NIR) == Ins.create(INS_NIR_OID, NIR)


def test_a_number_under_the_other_kind_of_ins_system_is_refused(
    client: TestClient, services: Services
) -> None:
    # An NIA (a temporary number: sex digit 7 or 8) is not a NIR, nor a NIR an NIA: under the
    # wrong system the same person would be indexed as two INS, two people never linked.
    nia = make_nir(8, 1985, 7, "99134", 12)
    diagnostics = _refused(client.post("/fhir/Patient", json=_patient(nia)))
    assert nia not in diagnostics
    _refused(client.post("/fhir/Patient", json=_patient(NIR, INS_NIA_OID)))
    assert _patients_stored(client) == 0
    assert services.identity.count() == 0
    assert client.post("/fhir/Patient", json=_patient(nia, INS_NIA_OID)).status_code == 201


def test_bulk_import_rejects_the_patient_with_a_broken_ins(
    client: TestClient, services: Services
) -> None:
    folder = services.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    lines = [_patient(NIR, id="good"), _patient(BROKEN["letters"], id="bad")]
    (folder / "Patient.ndjson").write_bytes(b"\n".join(orjson.dumps(p) for p in lines))
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "input",
                "part": [
                    {"name": "type", "valueCode": "Patient"},
                    {"name": "url", "valueUri": (folder / "Patient.ndjson").as_uri()},
                ],
            }
        ],
    }
    headers = {"Prefer": "respond-async", "Content-Type": "application/fhir+json"}
    started = client.post("/fhir/$import", json=body, headers=headers)
    assert started.status_code == 202, started.text
    location = started.headers["Content-Location"].replace("http://127.0.0.1", "")
    for _ in range(400):
        polled = client.get(location)
        if polled.status_code != 202:
            break
        time.sleep(0.025)
    assert polled.status_code == 200, polled.text
    report = polled.json()["report"]
    [rejection] = report["rejections"]
    assert rejection["status"] == 422
    assert rejection["reason"] == "value: Patient.identifier"  # the path, never the value
    assert client.get("/fhir/Patient/good").status_code == 200
    assert client.get("/fhir/Patient/bad").status_code == 404


def _stored(client: TestClient, res_type: str) -> int:
    found = client.get(f"/fhir/{res_type}", params={"_summary": "count"})
    assert found.status_code == 200, found.text
    return int(found.json()["total"])


def test_broken_ins_is_refused_wherever_it_appears_in_a_body(
    client: TestClient, services: Services
) -> None:
    bad = BROKEN["wrong key"]
    patient = _patient(bad)
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": patient}],
    }
    performer = {**observation("x"), "contained": [{**patient, "id": "p1"}]}
    performer["performer"] = [{"reference": "#p1"}]
    related = {
        "resourceType": "RelatedPerson",
        "patient": {"reference": "Patient/x"},
        "identifier": [{"system": INS_NIR_OID, "value": bad}],
    }
    by_reference = observation("x")
    by_reference["performer"] = [{"identifier": {"system": INS_NIA_OID, "value": bad}}]
    for body in (collection, performer, related, by_reference):
        diagnostics = _refused(client.post(f"/fhir/{body['resourceType']}", json=body))
        assert bad not in diagnostics  # the rule, never the number
    # an update brings one just the same; a transaction entry too (the whole Bundle refused)
    # (an item joins an existing record: Patient/x, no traits, so no identity)
    assert client.put("/fhir/Patient/x", json={"resourceType": "Patient", "id": "x"}).is_success
    kept = client.post("/fhir/Observation", json=observation("x"))
    assert kept.status_code == 201, kept.text
    oid = kept.json()["id"]
    _refused(client.put(f"/fhir/Observation/{oid}", json={**performer, "id": oid}))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Observation"}, "resource": observation("y")},
            {"request": {"method": "POST", "url": "RelatedPerson"}, "resource": related},
        ],
    }
    assert client.post("/fhir", json=bundle).status_code == 422
    assert [_stored(client, t) for t in ("Bundle", "RelatedPerson", "Patient")] == [0, 0, 1]
    assert _stored(client, "Observation") == 1
    assert client.get(f"/fhir/Observation/{oid}").json()["meta"]["versionId"] == "1"
    assert services.identity.count() == 0
