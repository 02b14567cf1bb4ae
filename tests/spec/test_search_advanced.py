"""Search beyond single parameters: chains, _has, _include/_revinclude, compartments, result
shaping (_summary, _elements, _total) and the modifiers :missing, :contains, :text, :identifier,
:above/:below. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.spec.helpers import FHIR_JSON, observation, patient
from tests.spec.test_search import create, ids, search

NIR = "urn:oid:1.2.250.1.213.1.4.8"
RPPS = "urn:oid:1.2.250.1.71.4.2.1"


def practitioner(family: str, rpps: str) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": RPPS, "value": rpps}],
        "name": [{"family": family, "given": ["Jean"]}],
    }


def world(client: TestClient) -> dict[str, str]:
    """Two GPs, two patients (one per GP), observations and a provenance."""
    gp_a = create(client, practitioner("Lemaire", "810000000011"))["id"]
    gp_b = create(client, practitioner("Rousseau", "810000000029"))["id"]
    pa = create(
        client,
        patient(
            family="Bernard",
            identifier=[{"system": NIR, "value": "280057512345674"}],
            generalPractitioner=[{"reference": f"Practitioner/{gp_a}"}],
        ),
    )["id"]
    pb = create(
        client,
        patient(
            family="Petit",
            identifier=[{"system": NIR, "value": "180017512345660"}],
            generalPractitioner=[{"reference": f"Practitioner/{gp_b}"}],
        ),
    )["id"]
    oa = create(
        client, observation(pa, code="8302-2", performer=[{"reference": f"Practitioner/{gp_a}"}])
    )["id"]
    ob = create(client, observation(pb, code="29463-7", value=70.0))["id"]
    prov = create(
        client,
        {
            "resourceType": "Provenance",
            "target": [{"reference": f"Observation/{oa}"}],
            "recorded": "2024-03-05T10:15:00+01:00",
            "agent": [{"who": {"reference": f"Practitioner/{gp_a}"}}],
        },
    )["id"]
    return {"gp_a": gp_a, "gp_b": gp_b, "pa": pa, "pb": pb, "oa": oa, "ob": ob, "prov": prov}


def test_chained_parameters(client: TestClient) -> None:
    w = world(client)
    assert ids(client, "Observation", {"subject:Patient.identifier": f"{NIR}|280057512345674"}) == {
        w["oa"]
    }
    assert ids(client, "Observation", {"patient.family": "peti"}) == {w["ob"]}
    assert ids(client, "Patient", {"general-practitioner.name": "lemai"}) == {w["pa"]}
    assert ids(
        client, "Patient", {"general-practitioner:Practitioner.identifier": f"{RPPS}|810000000029"}
    ) == {w["pb"]}
    # two levels: observations of patients whose GP is Rousseau
    assert ids(
        client, "Observation", {"subject:Patient.general-practitioner.family": "rousseau"}
    ) == {w["ob"]}
    assert ids(client, "Observation", {"patient.family": "nobody"}) == set()


def test_reverse_chaining_has(client: TestClient) -> None:
    w = world(client)
    assert ids(
        client, "Patient", {"_has:Observation:patient:code": "http://loinc.org|29463-7"}
    ) == {w["pb"]}
    assert ids(client, "Patient", {"_has:Observation:subject:code": "8302-2"}) == {w["pa"]}
    # nested: practitioners whose patients have a weight observation
    assert ids(
        client,
        "Practitioner",
        {"_has:Patient:general-practitioner:_has:Observation:patient:code": "29463-7"},
    ) == {w["gp_b"]}
    assert ids(client, "Patient", {"_has:Observation:patient:code": "0000-0"}) == set()


def test_include_and_revinclude(client: TestClient) -> None:
    w = world(client)
    bundle = search(client, "Observation", {"_id": w["oa"], "_include": "Observation:subject"})
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]}
    assert modes == {("Observation", "match"), ("Patient", "include")}
    assert bundle["total"] == 1  # includes are not counted

    bundle = search(
        client,
        "Observation",
        {
            "_id": w["oa"],
            "_include": "Observation:subject",
            "_include:iterate": "Patient:general-practitioner",
        },
    )
    included = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert included == {w["pa"], w["gp_a"]}

    bundle = search(client, "Observation", {"_id": w["oa"], "_revinclude": "Provenance:target"})
    included = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert included == {w["prov"]}

    bundle = search(client, "Patient", {"_id": w["pb"], "_revinclude": "Observation:patient"})
    included = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert included == {w["ob"]}


def test_include_must_name_a_reference(client: TestClient) -> None:
    r = client.get("/fhir/Observation", params={"_include": "Observation:code"})
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


def test_compartment_search(client: TestClient) -> None:
    w = world(client)
    r = client.get(f"/fhir/Patient/{w['pa']}/Observation")
    assert r.status_code == 200
    assert {e["resource"]["id"] for e in r.json()["entry"]} == {w["oa"]}
    r = client.get(f"/fhir/Patient/{w['pb']}/Observation", params={"code": "8302-2"})
    assert r.json()["total"] == 0
    assert client.get("/fhir/Patient/unknown-patient/Observation").status_code == 404
    # history of a patient is not a compartment search
    assert client.get(f"/fhir/Patient/{w['pa']}/_history").json()["type"] == "history"


def test_ins_identifier_search(client: TestClient) -> None:
    w = world(client)
    assert ids(client, "Patient", {"identifier": f"{NIR}|180017512345660"}) == {w["pb"]}
    assert ids(client, "Patient", {"identifier": "180017512345660"}) == {w["pb"]}
    assert ids(client, "Patient", {"identifier": f"{NIR}|"}) == {w["pa"], w["pb"]}


def test_summary_elements_and_total(client: TestClient) -> None:
    w = world(client)
    bundle = search(client, "Patient", {"_id": w["pa"], "_elements": "gender"})
    body = bundle["entry"][0]["resource"]
    assert body["gender"] == "female"
    assert "name" not in body and "birthDate" not in body
    assert any(t["code"] == "SUBSETTED" for t in body["meta"]["tag"])
    bundle = search(client, "Patient", {"_id": w["pa"], "_summary": "true"})
    body = bundle["entry"][0]["resource"]
    assert "name" in body and "identifier" in body  # summary elements of Patient
    assert "generalPractitioner" not in body  # not a summary element of Patient
    bundle = search(client, "Patient", {"_total": "none"})
    assert "total" not in bundle
    assert len(bundle["entry"]) == 2
    assert search(client, "Patient", {"_summary": "count"})["total"] == 2
    assert client.get("/fhir/Patient", params={"_total": "sometimes"}).status_code == 400


def test_missing_modifier(client: TestClient) -> None:
    with_date = create(client, patient())["id"]
    without = create(client, {"resourceType": "Patient", "gender": "male"})["id"]
    assert ids(client, "Patient", {"birthdate:missing": "true"}) == {without}
    assert ids(client, "Patient", {"birthdate:missing": "false"}) == {with_date}
    assert client.get("/fhir/Patient", params={"birthdate:missing": "maybe"}).status_code == 400


def test_contains_modifier_is_blind_and_per_value(client: TestClient) -> None:
    a = create(client, patient(family="Dupontel", given="Albert"))["id"]
    b = create(client, patient(family="Lapointe", given="Ontario"))["id"]
    assert ids(client, "Patient", {"family:contains": "pont"}) == {a}
    assert ids(client, "Patient", {"name:contains": "ONT"}) == {a, b}
    assert ids(client, "Patient", {"family:contains": "ntel"}) == {a}
    # trigrams of "pontario" exist across family and given of b, but not within one value
    assert ids(client, "Patient", {"name:contains": "pontario"}) == set()
    assert client.get("/fhir/Patient", params={"family:contains": "po"}).status_code == 400


def test_text_modifier_on_codes(client: TestClient) -> None:
    p = create(client, patient())["id"]
    obs = observation(p)
    obs["code"] = {
        "coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body height"}],
        "text": "Taille",
    }
    o = create(client, obs)["id"]
    assert ids(client, "Observation", {"code:text": "body"}) == {o}
    assert ids(client, "Observation", {"code:text": "taill"}) == {o}
    assert ids(client, "Observation", {"code:text": "weight"}) == set()


def test_identifier_modifier_on_references(client: TestClient) -> None:
    p = create(client, patient())["id"]
    obs = observation(p)
    obs["performer"] = [{"identifier": {"system": RPPS, "value": "810000000011"}}]
    o = create(client, obs)["id"]
    assert ids(client, "Observation", {"performer:identifier": f"{RPPS}|810000000011"}) == {o}
    assert ids(client, "Observation", {"performer:identifier": f"{RPPS}|810000000099"}) == set()


def test_uri_above_and_below(client: TestClient) -> None:
    def valueset(url: str) -> str:
        body = {"resourceType": "ValueSet", "status": "active", "url": url}
        return str(create(client, body)["id"])

    root = valueset("http://example.org/fhir/ValueSet")
    child = valueset("http://example.org/fhir/ValueSet/child")
    other = valueset("http://other.org/ValueSet/x")
    assert ids(client, "ValueSet", {"url:below": "http://example.org/fhir"}) == {root, child}
    assert ids(client, "ValueSet", {"url:above": "http://example.org/fhir/ValueSet/child/v2"}) == {
        root,
        child,
    }
    assert ids(client, "ValueSet", {"url": "http://other.org/ValueSet/x"}) == {other}


def test_unsupported_modifier_is_400_even_in_lenient_mode(client: TestClient) -> None:
    r = client.get("/fhir/Patient", params={"gender:below": "f"})
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


def test_strict_handling_rejects_unknown_chain(client: TestClient) -> None:
    r = client.get(
        "/fhir/Observation", params={"subject.nonsense": "x"}, headers={"Prefer": "handling=strict"}
    )
    assert r.status_code == 400
    lenient = client.get("/fhir/Observation", params={"subject.nonsense": "x"})
    assert lenient.status_code == 200
    outcome = [e for e in lenient.json().get("entry", []) if e["search"]["mode"] == "outcome"]
    assert outcome and "subject.nonsense" in outcome[0]["resource"]["issue"][0]["diagnostics"]


def test_create_bundle_posted_with_fhir_json(client: TestClient) -> None:
    # Practitioner search by RPPS identifier stays blind-indexed yet exact.
    w = world(client)
    r = client.get(
        "/fhir/Practitioner", params={"identifier": f"{RPPS}|810000000011"}, headers=FHIR_JSON
    )
    assert {e["resource"]["id"] for e in r.json()["entry"]} == {w["gp_a"]}


def test_composite_code_value_quantity(client: TestClient) -> None:
    p = create(client, patient())["id"]
    bp = observation(p, code="85354-9")
    del bp["valueQuantity"]
    bp["component"] = [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {
                "value": 150,
                "unit": "mm[Hg]",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {
                "value": 95,
                "unit": "mm[Hg]",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
    ]
    high = create(client, bp)["id"]
    tall = create(client, observation(p, code="8302-2", value=182.0))["id"]
    q = "component-code-value-quantity"
    assert ids(client, "Observation", {q: "http://loinc.org|8480-6$gt140"}) == {high}
    assert ids(client, "Observation", {q: "8480-6$gt160"}) == set()
    # the value must belong to the component with that code, not to another one
    assert ids(client, "Observation", {q: "8462-4$gt140"}) == set()
    assert ids(client, "Observation", {"code-value-quantity": "http://loinc.org|8302-2$182"}) == {
        tall
    }
    assert ids(client, "Observation", {"combo-code-value-quantity": "8462-4$95"}) == {high}
    assert ids(client, "Observation", {"combo-code-value-quantity": "8302-2$ge180,8480-6$150"}) == {
        tall,
        high,
    }
    assert client.get("/fhir/Observation", params={q: "8480-6"}).status_code == 400


def _follow(client: TestClient, bundle: dict[str, Any], relation: str) -> dict[str, Any] | None:
    link = next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)
    if link is None:
        return None
    r = client.get(link.replace("http://127.0.0.1", ""))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_paging_neither_skips_nor_repeats_when_data_changes(client: TestClient) -> None:
    originals = [create(client, patient(family=f"Page{i}"))["id"] for i in range(5)]
    first = search(client, "Patient", {"_count": "2", "_sort": "_id"})
    seen = [e["resource"]["id"] for e in first["entry"]]
    # Between pages: delete a resource of page one and add a new one that sorts first.
    assert client.delete(f"/fhir/Patient/{seen[0]}").status_code == 204
    client.put("/fhir/Patient/0000-first", json=patient(id="0000-first"), headers=FHIR_JSON)
    bundle: dict[str, Any] | None = first
    while (bundle := _follow(client, bundle, "next")) is not None:
        seen.extend(e["resource"]["id"] for e in bundle.get("entry", []))
    assert len(seen) == len(set(seen)), "a resource was repeated"
    assert set(seen) == set(originals), "a resource was skipped (or one added later crept in)"
    back = _follow(client, _follow(client, first, "next") or {}, "previous")
    assert back is not None
    # page one again, from the snapshot: its deleted resource is gone, nothing else moved in
    assert [e["resource"]["id"] for e in back["entry"]] == seen[1:2]


def test_unknown_snapshot_is_gone(client: TestClient) -> None:
    r = client.get("/fhir/Patient", params={"_snapshot": "no-such-snapshot", "_offset": "2"})
    assert r.status_code == 410
    assert r.json()["resourceType"] == "OperationOutcome"
