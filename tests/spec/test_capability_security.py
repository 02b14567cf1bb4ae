"""What a SMART client library reads from the CapabilityStatement: the OAuth endpoints
(``rest.security``), and the operations and _include/_revinclude the server really accepts."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.spec.helpers import observation, patient

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def _rest(client: TestClient) -> dict[str, Any]:
    rest: dict[str, Any] = client.get("/fhir/metadata").json()["rest"][0]
    return rest


def test_capability_statement_publishes_smart_oauth_uris(client: TestClient) -> None:
    security = _rest(client)["security"]
    codings = [c for s in security["service"] for c in s["coding"]]
    assert {"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"} in [
        {"system": c["system"], "code": c["code"]} for c in codings
    ]
    (oauth,) = [e for e in security["extension"] if e["url"] == OAUTH_URIS]
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    smart = client.get("/.well-known/smart-configuration").json()
    assert uris == {
        "authorize": smart["authorization_endpoint"],
        "token": smart["token_endpoint"],
        "revoke": smart["revocation_endpoint"],
        "manage": smart["management_endpoint"],
    }
    metadata = client.get("/fhir/metadata", headers={"Host": "evil.example"}).json()
    assert "evil.example" not in str(metadata["rest"][0]["security"])


def test_capability_statement_lists_the_includes_the_server_accepts(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.post("/fhir/Observation", json=observation(pid))
    resources = {r["type"]: r for r in _rest(client)["resource"]}
    includes = resources["Observation"]["searchInclude"]
    assert "Observation:subject" in includes and "Observation:patient" in includes
    assert "Patient:general-practitioner" in resources["Patient"]["searchInclude"]
    assert "Observation:subject" in resources["Patient"]["searchRevInclude"]
    assert "Observation:subject" not in resources["Organization"]["searchRevInclude"]
    for value in includes:
        r = client.get("/fhir/Observation", params={"_include": value})
        assert r.status_code == 200, value
    for value in resources["Patient"]["searchRevInclude"][:40]:
        r = client.get("/fhir/Patient", params={"_revinclude": value})
        assert r.status_code == 200, value


def test_capability_statement_lists_the_operations_the_server_serves(client: TestClient) -> None:
    rest = _rest(client)
    resources = {r["type"]: r for r in rest["resource"]}
    patient_ops = {o["name"]: o["definition"] for o in resources["Patient"]["operation"]}
    assert patient_ops["everything"] == (
        "http://hl7.org/fhir/OperationDefinition/Patient-everything"
    )
    assert {"everything", "summary", "export"} <= set(patient_ops)
    assert {o["name"] for o in resources["Group"]["operation"]} >= {"export"}
    assert "operation" not in resources["Observation"]
    system_ops = {o["name"] for o in rest["operation"]}
    assert {"export", "import"} <= system_ops
    assert not any(name.endswith(("-status", "-file")) for name in system_ops)
