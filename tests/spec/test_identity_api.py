"""The identity-vigilance HTTP API on SQLite and PostgreSQL: decisions with their evidence, the
queue and its actions, and clear OperationOutcomes for bad input."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from carnet.app import Services
from carnet.caller import Kind, Principal
from carnet.identity.ins import INS_NIR_OID
from carnet.identity.nir import make_nir
from tests.support.audit_log import logged_events
from tests.support.auth import bearer

NIR = make_nir(2, 1972, 3, "69123", 4)


def _patient(given: str = "Anne", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "Petit", "given": [given, "Marie"]}],
        "gender": "female",
        "birthDate": "1972-03-09",
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {"district": "69123"},
            }
        ],
        **extra,
    }


def test_resolve_then_match_explains(client: TestClient) -> None:
    first = client.post("/identity/resolve", json=_patient())
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "new"
    explained = client.post("/identity/match", json=_patient())
    body = explained.json()
    assert body["outcome"] == "link"
    assert body["identity"] == first.json()["identity"]
    levels = {c["comparison"]: c["level"] for c in body["candidates"][0]["comparisons"]}
    assert levels == {
        "family_name": "exact",
        "given_names": "exact",
        "birth_date": "exact",
        "sex": "exact",
        "birth_place": "exact",
    }
    assert body["candidates"][0]["weight"] >= 12


def test_queue_merge_and_dismiss(client: TestClient) -> None:
    client.post("/identity/resolve", json=_patient())
    twin = client.post("/identity/resolve", json=_patient("Claire")).json()
    assert twin["outcome"] == "review"
    items = client.get("/identity/queue").json()["items"]
    assert [i["id"] for i in items] == [twin["vigilanceItem"]]
    assert client.post(f"/identity/queue/{twin['vigilanceItem']}/dismiss").json() == {"released": 0}
    again = client.post(f"/identity/queue/{twin['vigilanceItem']}/dismiss")
    assert again.status_code == 409
    assert "already dismissed" in again.json()["issue"][0]["diagnostics"]
    missing = client.post("/identity/queue/nope/merge")
    assert missing.status_code == 404
    assert client.post("/identity/merges/nope/unmerge").status_code == 404
    assert client.get("/identity/queue?state=bogus").status_code == 400


def test_identity_merge_over_http_is_audited_as_its_caller(
    client: TestClient, services: Services
) -> None:
    """What a merge made over HTTP writes (the two Patients' links) is audited as that caller,
    its client and its address, not as the local operator of the CLI."""
    first = client.post("/fhir/Patient", json=_patient())
    second = client.post("/fhir/Patient", json=_patient())
    assert (first.status_code, second.status_code) == (201, 201)
    [item] = client.get("/identity/queue").json()["items"]
    http_source = logged_events(services)[-1]["source"]
    before = len(logged_events(services))
    officer = Principal(
        Kind.OPERATOR,
        "operator:vigilance",
        client_id="vigilance-console",
        scopes=frozenset({"system/*.*"}),
    )
    merged = client.post(f"/identity/queue/{item['id']}/merge", headers=bearer(services, officer))
    assert merged.status_code == 200, merged.text
    events = logged_events(services)[before:]
    assert events
    for event in events:
        assert (event["actor"], event["client"], event["source"]) == (
            "operator:vigilance",
            "vigilance-console",
            http_source,
        ), event


def test_a_refused_vigilance_action_is_audited_with_its_refusal(
    client: TestClient, services: Services
) -> None:
    """Every access, allowed or denied, is audited with its real outcome: a merge or dismissal
    the queue refuses (an item already resolved, one that does not exist) answered 409 or 404,
    and was logged as a server failure (500) or not at all."""
    client.post("/identity/resolve", json=_patient())
    twin = client.post("/identity/resolve", json=_patient("Claire")).json()
    item = twin["vigilanceItem"]
    assert client.post(f"/identity/queue/{item}/dismiss").status_code == 200
    tries = [
        (f"/identity/queue/{item}/dismiss", 409),
        (f"/identity/queue/{item}/merge", 409),
        ("/identity/queue/no-such-item/merge", 404),
        ("/identity/merges/no-such-merge/unmerge", 404),
    ]
    for url, status in tries:
        before = len(logged_events(services))
        assert client.post(url).status_code == status, url
        outcomes = [e["outcome"] for e in logged_events(services)[before:]]
        assert outcomes == [status], url


def test_bad_input_is_a_clear_operation_outcome(client: TestClient) -> None:
    cases = [
        (_patient(birthDate="1972-02-30"), "birth date '1972-02-30' is not a YYYY-MM-DD date"),
        (
            _patient(identifier=[{"system": INS_NIR_OID, "value": NIR[:-2] + "00"}]),
            "INS INS-NIR: check key is 00",
        ),
        (
            {**_patient(), "name": [{"use": "official", "family": "  ", "given": ["A"]}]},
            "birth name is empty",
        ),
        ({"resourceType": "Observation"}, "the body must be a FHIR Patient"),
    ]
    for body, message in cases:
        response = client.post("/identity/resolve", json=body)
        assert response.status_code == 400, body
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert message in outcome["issue"][0]["diagnostics"]
    assert client.get("/identity/queue").json() == {"items": []}


def test_patient_writes_go_through_matching(client: TestClient) -> None:
    first = client.post("/fhir/Patient", json=_patient())
    assert first.status_code == 201, first.text
    pid = first.json()["id"]
    explained = client.post("/identity/match", json=_patient()).json()
    assert explained["outcome"] == "link"
    assert explained["patient"] == pid
    # Updating the same Patient does not create another identity.
    body = {**first.json(), "active": True}
    assert client.put(f"/fhir/Patient/{pid}", json=body).status_code == 200
    assert client.get("/identity/queue").json() == {"items": []}
    # A second Patient with the same identity: stored, and sent to the vigilance queue.
    second = client.post("/fhir/Patient", json=_patient())
    assert second.status_code == 201
    [item] = client.get("/identity/queue").json()["items"]
    assert item["evidence"]["reason"] == "another Patient has this identity"
    # A Patient without valid strict traits is stored but not indexed.
    bad = _patient(gender="other")
    assert client.post("/fhir/Patient", json=bad).status_code == 201
    # One whose INS breaks the NIR rules is refused, never stored (issue 12).
    broken = _patient(identifier=[{"system": INS_NIR_OID, "value": NIR[:-2] + "00"}])
    assert client.post("/fhir/Patient", json=broken).status_code == 422
    assert len(client.get("/identity/queue").json()["items"]) == 1


def test_an_update_never_turns_a_patient_into_another_person(client: TestClient) -> None:
    created = client.post(
        "/fhir/Patient",
        json=_patient(identifier=[{"system": INS_NIR_OID, "value": NIR}]),
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    # Another person under the same id (two sources' files both calling their patient "p1", a
    # wrong record picked at the desk): her record would become his, without a word.
    other = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"use": "official", "family": "Durand", "given": ["Luc"]}],
        "gender": "male",
        "birthDate": "1950-11-30",
    }
    refused = client.put(f"/fhir/Patient/{pid}", json=other)
    assert refused.status_code == 409, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert "DURAND" not in refused.text.upper() and "LUC" not in refused.text.upper()
    kept = client.get(f"/fhir/Patient/{pid}").json()
    assert kept["name"][0]["family"] == "Petit" and kept["meta"]["versionId"] == "1"
    # Her own details are still hers to correct: a later first name, a usage name.
    corrected = _patient(given="Anne", id=pid, identifier=created.json()["identifier"])
    corrected["name"].append({"use": "usual", "family": "Martin"})
    assert client.put(f"/fhir/Patient/{pid}", json=corrected).status_code == 200
