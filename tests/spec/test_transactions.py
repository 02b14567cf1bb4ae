"""transaction (all-or-nothing) and batch (entry by entry) Bundles posted to the base URL."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.spec.helpers import FHIR_JSON, observation, patient

NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
NIR = "280057512345674"


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def post_entry(resource: dict[str, Any], full_url: str | None = None, **request: Any) -> Any:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def totals(client: TestClient) -> tuple[int, int, int]:
    """(system history total, current Patients, current Observations): what 'stored' means."""
    return (
        client.get("/fhir/_history").json()["total"],
        client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"],
        client.get("/fhir/Observation", params={"_summary": "count"}).json()["total"],
    )


def send(client: TestClient, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    r = client.post("/fhir", json=body, headers=FHIR_JSON)
    assert r.status_code == status, r.text
    return dict(r.json())


def outcome(body: dict[str, Any], code: str, expression_part: str = "") -> None:
    assert body["resourceType"] == "OperationOutcome"
    assert any(i["code"] == code for i in body["issue"]), body
    assert all(i["diagnostics"] for i in body["issue"])
    if expression_part:
        exprs = [e for i in body["issue"] for e in i.get("expression", [])]
        assert any(expression_part in e for e in exprs), body


def located(entry: dict[str, Any]) -> tuple[str, str, str]:
    """(type, id, version) from an entry's response.location."""
    res_type, res_id, history, version = entry["response"]["location"].split("/")
    assert history == "_history"
    return res_type, res_id, version


# -- transaction: success ----------------------------------------------------------------------


def nir_patient_transaction() -> dict[str, Any]:
    p_urn, o_urn = urn(), urn()
    p = patient(identifier=[{"system": NIR_SYSTEM, "value": NIR}])
    obs = observation("placeholder")
    obs["subject"] = {"reference": p_urn}
    obs["hasMember"] = [{"reference": o_urn}]  # a self-reference resolves too
    return bundle(
        "transaction",
        post_entry(p, p_urn, ifNoneExist=f"identifier={NIR_SYSTEM}|{NIR}"),
        post_entry(obs, o_urn),
    )


def test_transaction_creates_and_rewrites_urn_uuid_references(client: TestClient) -> None:
    out = send(client, nir_patient_transaction())
    assert out["resourceType"] == "Bundle"
    assert out["type"] == "transaction-response"
    assert len(out["entry"]) == 2
    for entry in out["entry"]:
        assert entry["response"]["status"] == "201 Created"
        assert entry["response"]["etag"] == 'W/"1"'
        assert entry["response"]["lastModified"].endswith("Z")
    p_type, pid, p_version = located(out["entry"][0])
    o_type, oid, _ = located(out["entry"][1])
    assert (p_type, o_type, p_version) == ("Patient", "Observation", "1")
    obs = client.get(f"/fhir/Observation/{oid}").json()
    assert obs["subject"]["reference"] == f"Patient/{pid}"
    assert obs["hasMember"][0]["reference"] == f"Observation/{oid}"
    assert client.get(f"/fhir/Patient/{pid}").json()["identifier"][0]["value"] == NIR
    # indexed: the reference is searchable under the new id
    found = client.get("/fhir/Observation", params={"patient": pid}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [oid]
    assert totals(client) == (2, 1, 1)


def test_transaction_if_none_exist_does_not_duplicate(client: TestClient) -> None:
    first = send(client, nir_patient_transaction())
    _, pid, _ = located(first["entry"][0])
    second = send(client, nir_patient_transaction())
    assert second["entry"][0]["response"]["status"] == "200 OK"
    assert located(second["entry"][0]) == ("Patient", pid, "1")
    assert second["entry"][1]["response"]["status"] == "201 Created"
    _, oid2, _ = located(second["entry"][1])
    # the new Observation points at the existing Patient
    obs = client.get(f"/fhir/Observation/{oid2}").json()
    assert obs["subject"]["reference"] == f"Patient/{pid}"
    assert totals(client) == (3, 1, 2)


def test_transaction_put_delete_and_get_entries(client: TestClient) -> None:
    keep = client.post("/fhir/Patient", json=patient(family="Garde"), headers=FHIR_JSON).json()
    gone = client.post("/fhir/Patient", json=patient(family="Efface"), headers=FHIR_JSON).json()
    changed = {**keep, "gender": "male"}
    out = send(
        client,
        bundle(
            "transaction",
            {"resource": changed, "request": {"method": "PUT", "url": f"Patient/{keep['id']}"}},
            {"request": {"method": "DELETE", "url": f"Patient/{gone['id']}"}},
            {
                "fullUrl": "urn:uuid:0f6a5e3a-8d0e-4e0b-9a57-3e4c3c2b2b10",
                "resource": patient(id="choisi-1", family="Choisi"),
                "request": {"method": "PUT", "url": "Patient/choisi-1"},
            },
            {"request": {"method": "GET", "url": f"Patient/{keep['id']}"}},
        ),
    )
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses[0] == "200 OK"
    assert statuses[1].startswith("204")
    assert statuses[2] == "201 Created"
    assert statuses[3] == "200 OK"
    assert located(out["entry"][0]) == ("Patient", keep["id"], "2")
    assert located(out["entry"][2]) == ("Patient", "choisi-1", "1")
    assert out["entry"][3]["resource"]["gender"] == "male"  # GET sees the PUT of the same Bundle
    assert client.get(f"/fhir/Patient/{keep['id']}").json()["gender"] == "male"
    assert client.get(f"/fhir/Patient/{gone['id']}").status_code == 410
    assert client.get("/fhir/Patient/choisi-1").status_code == 200


def test_transaction_if_match(client: TestClient) -> None:
    p = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()
    put = {
        "resource": {**p, "gender": "male"},
        "request": {"method": "PUT", "url": f"Patient/{p['id']}", "ifMatch": 'W/"1"'},
    }
    out = send(client, bundle("transaction", put))
    assert out["entry"][0]["response"]["etag"] == 'W/"2"'


# -- transaction: all-or-nothing ----------------------------------------------------------------


def test_invalid_entry_rejects_whole_transaction(client: TestClient) -> None:
    before = totals(client)
    p_urn = urn()
    bad = observation("x", status="done")
    bad["subject"] = {"reference": p_urn}
    body = bundle(
        "transaction",
        post_entry(patient(), p_urn),
        post_entry(observation("x", subject={"reference": p_urn})),
        post_entry(bad),
    )
    out = send(client, body, 422)
    outcome(out, "structure", "Bundle.entry[2].resource")
    exprs = [e for i in out["issue"] for e in i.get("expression", [])]
    assert "Bundle.entry[2].resource.status" in exprs  # FHIRPath: no type name after resource
    assert totals(client) == before == (0, 0, 0)


def test_missing_required_element_in_entry_rejects_whole_transaction(client: TestClient) -> None:
    obs = observation("x")
    del obs["status"]
    out = send(client, bundle("transaction", post_entry(patient()), post_entry(obs)), 422)
    outcome(out, "required", "Bundle.entry[1].resource")
    assert totals(client) == (0, 0, 0)


def test_unresolvable_urn_uuid_is_404_and_stores_nothing(client: TestClient) -> None:
    dangling = urn()
    body = bundle(
        "transaction",
        post_entry(patient(), urn()),
        post_entry(observation("x", subject={"reference": dangling})),
    )
    out = send(client, body, 404)
    outcome(out, "not-found", "Bundle.entry[1]")
    assert any(dangling in i["diagnostics"] for i in out["issue"])
    assert totals(client) == (0, 0, 0)


def test_a_fullurl_given_to_two_entries_is_refused_and_stores_nothing(
    client: TestClient,
) -> None:
    """Two entries under one fullUrl (bdl-7: a fullUrl is unique in a Bundle) made every
    reference to it point at the last of them: an Observation meant for one new Patient was
    silently attached to the other."""
    shared = urn()
    body = bundle(
        "transaction",
        post_entry(patient(family="Premier"), shared),
        post_entry(patient(family="Second"), shared),
        post_entry(observation("x", subject={"reference": shared})),
    )
    out = send(client, body, 400)
    outcome(out, "invalid", "Bundle.entry[1].fullUrl")
    assert totals(client) == (0, 0, 0)
    # bdl-7 lets the versions of one resource share its fullUrl: they name one resource
    versions = [
        {
            "fullUrl": "http://example.org/fhir/Patient/p45",
            "resource": patient(id="p45", meta={"versionId": v}, family=family),
            "request": {"method": "PUT", "url": "Patient/p45"},
        }
        for v, family in (("1", "Premier"), ("2", "Second"))
    ]
    send(client, bundle("transaction", *versions))
    assert totals(client)[1] == 1


def test_failure_during_writes_rolls_back_earlier_entries(client: TestClient) -> None:
    p = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()
    client.put(f"/fhir/Patient/{p['id']}", json={**p, "gender": "male"}, headers=FHIR_JSON)
    before = totals(client)
    assert before == (2, 1, 0)
    body = bundle(
        "transaction",
        post_entry(patient(family="Nouveau")),
        post_entry(observation(p["id"])),
        {
            "resource": {**p, "gender": "other"},
            "request": {"method": "PUT", "url": f"Patient/{p['id']}", "ifMatch": 'W/"1"'},
        },
    )
    r = client.post("/fhir", json=body, headers=FHIR_JSON)
    assert r.status_code == 412, r.text
    outcome(r.json(), "conflict")
    assert totals(client) == before
    assert client.get("/fhir/Patient", params={"family": "nouveau"}).json()["total"] == 0
    assert client.get(f"/fhir/Patient/{p['id']}").json()["gender"] == "male"


def test_if_none_exist_matching_several_rolls_back(client: TestClient) -> None:
    for _ in range(2):
        client.post("/fhir/Patient", json=patient(family="Double"), headers=FHIR_JSON)
    before = totals(client)
    body = bundle(
        "transaction",
        post_entry(observation("x")),
        post_entry(patient(family="Double"), ifNoneExist="family=double"),
    )
    r = client.post("/fhir", json=body, headers=FHIR_JSON)
    assert r.status_code == 412, r.text
    outcome(r.json(), "conflict")
    assert totals(client) == before


MALFORMED_ENTRIES: list[tuple[dict[str, Any], str, int]] = [
    (
        {"resource": patient(), "request": {"method": "POST", "url": "Observation"}},
        "Bundle.entry[1].resource",
        400,
    ),
    (
        {"resource": patient(), "request": {"method": "POST", "url": "Patiente"}},
        "Bundle.entry[1].request.url",
        400,
    ),
    ({"resource": patient()}, "Bundle.entry[1].request", 400),
    (
        # the Bundle itself violates the schema: request.method has a required binding
        {"resource": patient(), "request": {"method": "FETCH", "url": "Patient"}},
        "Bundle.entry[1].request.method",
        422,
    ),
    ({"request": {"method": "POST", "url": "Patient"}}, "Bundle.entry[1].resource", 400),
    ({"request": {"method": "DELETE", "url": "Patient"}}, "Bundle.entry[1].request.url", 400),
]


def test_malformed_entry_is_rejected_and_stores_nothing(client: TestClient) -> None:
    for entry, expression, status in MALFORMED_ENTRIES:
        r = client.post(
            "/fhir", json=bundle("transaction", post_entry(patient()), entry), headers=FHIR_JSON
        )
        assert r.status_code == status, (entry, r.text)
        issue_code = r.json()["issue"][0]["code"]
        assert issue_code in ("invalid", "required", "structure", "not-supported")
        outcome(r.json(), issue_code, expression)
    assert totals(client) == (0, 0, 0)


def test_urn_uuid_reference_to_conditional_update_resolves(client: TestClient) -> None:
    p_urn = urn()
    p = patient(identifier=[{"system": NIR_SYSTEM, "value": NIR}])
    body = bundle(
        "transaction",
        {
            "fullUrl": p_urn,
            "resource": p,
            "request": {"method": "PUT", "url": f"Patient?identifier={NIR_SYSTEM}|{NIR}"},
        },
        post_entry(observation("x", subject={"reference": p_urn})),
    )
    out = send(client, body)
    _, pid, _ = located(out["entry"][0])
    _, oid, _ = located(out["entry"][1])
    assert client.get(f"/fhir/Observation/{oid}").json()["subject"]["reference"] == (
        f"Patient/{pid}"
    )


def test_conditional_update_in_transaction(client: TestClient) -> None:
    ident = [{"system": NIR_SYSTEM, "value": NIR}]
    url = f"Patient?identifier={NIR_SYSTEM}|{NIR}"
    first = send(
        client,
        bundle(
            "transaction",
            {"resource": patient(identifier=ident), "request": {"method": "PUT", "url": url}},
        ),
    )
    assert first["entry"][0]["response"]["status"] == "201 Created"
    _, pid, _ = located(first["entry"][0])
    second = send(
        client,
        bundle(
            "transaction",
            {
                "resource": patient(identifier=ident, gender="male"),
                "request": {"method": "PUT", "url": url},
            },
        ),
    )
    assert second["entry"][0]["response"]["status"] == "200 OK"
    assert located(second["entry"][0]) == ("Patient", pid, "2")
    assert client.get(f"/fhir/Patient/{pid}").json()["gender"] == "male"
    assert totals(client) == (2, 1, 0)


# -- batch -------------------------------------------------------------------------------------


def test_batch_entries_are_independent(client: TestClient) -> None:
    existing = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()
    body = bundle(
        "batch",
        post_entry(patient(family="Bon")),
        post_entry(patient(family="Mauvais", gender="femme")),
        {"request": {"method": "GET", "url": "Patient/nobody"}},
        {"request": {"method": "GET", "url": f"Patient/{existing['id']}"}},
        {
            "resource": {**existing, "gender": "male"},
            "request": {"method": "PUT", "url": f"Patient/{existing['id']}", "ifMatch": 'W/"9"'},
        },
        post_entry(observation(existing["id"])),
    )
    out = send(client, body)
    assert out["type"] == "batch-response"
    entries = out["entry"]
    assert len(entries) == 6
    statuses = [e["response"]["status"].split()[0] for e in entries]
    assert statuses == ["201", "422", "404", "200", "412", "201"]
    outcome(entries[1]["response"]["outcome"], "structure", "Bundle.entry[1].resource.gender")
    outcome(entries[2]["response"]["outcome"], "not-found")
    outcome(entries[4]["response"]["outcome"], "conflict")
    assert entries[3]["resource"]["id"] == existing["id"]
    # successes are stored, failures are not
    assert client.get("/fhir/Patient", params={"family": "bon"}).json()["total"] == 1
    assert client.get("/fhir/Patient", params={"family": "mauvais"}).json()["total"] == 0
    assert client.get(f"/fhir/Patient/{existing['id']}").json()["gender"] == "female"
    assert totals(client) == (3, 2, 1)


def test_batch_search_entry(client: TestClient) -> None:
    client.post("/fhir/Patient", json=patient(family="Cherche"), headers=FHIR_JSON)
    out = send(
        client, bundle("batch", {"request": {"method": "GET", "url": "Patient?family=cherche"}})
    )
    found = out["entry"][0]["resource"]
    assert found["type"] == "searchset"
    assert found["total"] == 1


def test_batch_malformed_entry_fails_alone(client: TestClient) -> None:
    body = bundle(
        "batch",
        post_entry(patient(family="Bon")),
        {
            "resource": patient(family="Mauvais"),
            "request": {"method": "POST", "url": "Observation"},
        },
    )
    out = send(client, body)
    assert out["entry"][0]["response"]["status"].startswith("201")
    assert out["entry"][1]["response"]["status"].startswith("400")
    assert client.get("/fhir/Patient", params={"family": "bon"}).json()["total"] == 1


# -- conditional references (http.html#trules: resolved by search in a transaction) -------------

MRN = "urn:oid:1.2.250.1.71.4.2.7"


def test_a_conditional_reference_is_resolved_in_a_transaction_and_refused_elsewhere(
    client: TestClient,
) -> None:
    """``Patient?identifier=s|v`` in a transaction names the one Patient the search finds: it is
    rewritten to ``Patient/<id>``, so the item is in her record. No match or several fail the
    transaction (400 / 412) and store nothing. Outside a Bundle nothing resolves it: it is
    refused (400) rather than stored as text, an item in no record. A batch entry resolves it."""
    one = client.post("/fhir/Patient", json=patient(identifier=[{"system": MRN, "value": "A1"}]))
    pid = one.json()["id"]
    for given in ("Anne", "Rose"):  # two Patients share B2: ambiguous
        twin = patient(given=given, identifier=[{"system": MRN, "value": "B2"}])
        assert client.post("/fhir/Patient", json=twin).status_code == 201

    out = send(
        client,
        bundle(
            "transaction",
            post_entry(observation("x", subject={"reference": f"Patient?identifier={MRN}|A1"})),
        ),
    )
    _, oid, _ = located(out["entry"][0])
    stored = client.get(f"/fhir/Observation/{oid}").json()
    assert stored["subject"]["reference"] == f"Patient/{pid}"
    found = client.get("/fhir/Observation", params={"patient": pid}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [oid]

    before = totals(client)
    for value, status in (("Z9", 400), ("B2", 412)):
        ref = {"reference": f"Patient?identifier={MRN}|{value}"}
        r = client.post(
            "/fhir",
            json=bundle("transaction", post_entry(observation("x", subject=ref))),
            headers=FHIR_JSON,
        )
        assert r.status_code == status, r.text
        outcome(r.json(), "not-found" if status == 400 else "multiple-matches", "subject")
    assert totals(client) == before

    ref = {"reference": f"Patient?identifier={MRN}|A1"}
    r = client.post("/fhir/Observation", json=observation("x", subject=ref))
    assert r.status_code == 400, r.text
    outcome(r.json(), "invalid", "Observation.subject.reference")
    assert totals(client) == before
    # A batch entry resolves it as a transaction does (HAPI FHIR too).
    out = send(client, bundle("batch", post_entry(observation("x", subject=ref))))
    _, oid, _ = located(out["entry"][0])
    assert client.get(f"/fhir/Observation/{oid}").json()["subject"]["reference"] == f"Patient/{pid}"
