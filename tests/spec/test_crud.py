"""Create, read, vread, update, delete and history: the REST interactions, on every backend."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.spec.helpers import FHIR_JSON, observation, patient


def create(client: TestClient, body: dict[str, object]) -> dict[str, object]:
    r = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_create_assigns_id_version_and_headers(client: TestClient) -> None:
    r = client.post("/fhir/Patient", json=patient(id="client-chosen"), headers=FHIR_JSON)
    assert r.status_code == 201
    body = r.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Location"] == f"Patient/{body['id']}/_history/1"
    assert r.headers["content-type"].startswith("application/fhir+json")


def test_read_returns_what_was_stored(client: TestClient) -> None:
    created = create(client, patient(family="Lefèvre"))
    r = client.get(f"/fhir/Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["ETag"] == 'W/"1"'


def test_update_creates_new_version_and_vread_keeps_old(client: TestClient) -> None:
    created = create(client, patient())
    pid = created["id"]
    changed = {**created, "gender": "male"}
    r = client.put(f"/fhir/Patient/{pid}", json=changed, headers=FHIR_JSON)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "2"
    assert client.get(f"/fhir/Patient/{pid}/_history/1").json()["gender"] == "female"
    assert client.get(f"/fhir/Patient/{pid}/_history/2").json()["gender"] == "male"
    assert client.get(f"/fhir/Patient/{pid}").json()["gender"] == "male"


def test_update_with_new_id_creates(client: TestClient) -> None:
    r = client.put("/fhir/Patient/chosen-1", json=patient(id="chosen-1"), headers=FHIR_JSON)
    assert r.status_code == 201
    assert r.json()["id"] == "chosen-1"
    assert client.get("/fhir/Patient/chosen-1").status_code == 200


def test_if_match_current_version_succeeds_and_stale_fails(client: TestClient) -> None:
    created = create(client, patient())
    pid = created["id"]
    headers = {**FHIR_JSON, "If-Match": 'W/"1"'}
    ok = client.put(f"/fhir/Patient/{pid}", json={**created, "gender": "male"}, headers=headers)
    assert ok.status_code == 200
    stale = client.put(f"/fhir/Patient/{pid}", json={**created, "gender": "other"}, headers=headers)
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    current = client.get(f"/fhir/Patient/{pid}").json()
    assert current["meta"]["versionId"] == "2"
    assert current["gender"] == "male"


def test_unchanged_update_makes_no_new_version(client: TestClient) -> None:
    created = create(client, patient())
    r = client.put(f"/fhir/Patient/{created['id']}", json=created, headers=FHIR_JSON)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "1"
    assert client.get(f"/fhir/Patient/{created['id']}/_history").json()["total"] == 1


def test_delete_is_logical_and_history_keeps_versions(client: TestClient) -> None:
    created = create(client, patient())
    pid = created["id"]
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    gone = client.get(f"/fhir/Patient/{pid}")
    assert gone.status_code == 410
    assert gone.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{pid}/_history/1").status_code == 200
    history = client.get(f"/fhir/Patient/{pid}/_history").json()
    assert history["type"] == "history"
    assert history["total"] == 2
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    # deleting again changes nothing
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert client.get(f"/fhir/Patient/{pid}/_history").json()["total"] == 2


def test_type_and_system_history(client: TestClient) -> None:
    p = create(client, patient())
    create(client, observation(str(p["id"])))
    assert client.get("/fhir/Patient/_history").json()["total"] == 1
    assert client.get("/fhir/_history").json()["total"] == 2


def test_conditional_create_returns_existing_match(client: TestClient) -> None:
    ident = [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "280057512345674"}]
    headers = {
        **FHIR_JSON,
        "If-None-Exist": "identifier=urn:oid:1.2.250.1.213.1.4.8|280057512345674",
    }
    first = client.post("/fhir/Patient", json=patient(identifier=ident), headers=headers)
    assert first.status_code == 201
    second = client.post("/fhir/Patient", json=patient(identifier=ident), headers=headers)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert client.get("/fhir/Patient/_history").json()["total"] == 1


def test_prefer_return_minimal(client: TestClient) -> None:
    r = client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR_JSON, "Prefer": "return=minimal"}
    )
    assert r.status_code == 201
    assert r.content == b""
    assert r.headers["Location"].startswith("Patient/")


def test_capability_statement_lists_what_is_served(client: TestClient) -> None:
    cs = client.get("/fhir/metadata").json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    for required in (
        "Patient",
        "Observation",
        "DocumentReference",
        "Binary",
        "ExplanationOfBenefit",
    ):
        assert required in resources
    patient_params = {p["name"] for p in resources["Patient"]["searchParam"]}
    assert {"identifier", "family", "given", "name", "birthdate", "gender"} <= patient_params
    obs_params = {p["name"] for p in resources["Observation"]["searchParam"]}
    assert {
        "patient",
        "subject",
        "code",
        "category",
        "date",
        "value-quantity",
        "status",
    } <= obs_params
