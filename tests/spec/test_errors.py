"""Error paths of the REST API: every failure is an OperationOutcome with the right status, says
where the problem is, and stores nothing."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from tests.spec.helpers import FHIR_JSON, observation, patient

NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"


def history_total(client: TestClient, path: str = "/fhir/_history") -> int:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def assert_outcome(
    r: Response,
    status: int,
    code: str | tuple[str, ...],
    *,
    expression: str | None = None,
    diagnostics: str | None = None,
    label: str = "",
) -> dict[str, Any]:
    """The response is an OperationOutcome with ``status``, an issue of ``code`` and, if given,
    an issue whose expression is ``expression`` and diagnostics mention ``diagnostics``."""
    assert r.status_code == status, (label, r.text)
    assert r.headers["content-type"].startswith("application/fhir+json"), label
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", label
    issues = body["issue"]
    assert issues, f"{label}: an OperationOutcome must carry at least one issue"
    codes = (code,) if isinstance(code, str) else code
    assert any(i["code"] in codes for i in issues), (label, issues)
    assert all(i["severity"] in ("error", "fatal") for i in issues), (label, issues)
    assert all(i.get("diagnostics") for i in issues), (label, issues)
    if expression is not None:
        assert any(expression in i.get("expression", []) for i in issues), (label, issues)
    if diagnostics is not None:
        assert any(diagnostics.lower() in i["diagnostics"].lower() for i in issues), (
            label,
            issues,
        )
    return dict(body)


def create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return dict(r.json())


# -- 400: the request itself is malformed ---------------------------------------------------------


MALFORMED_BODIES = [
    (b'{"resourceType": "Patient", ', "not valid JSON"),
    (b"{bad", "not valid JSON"),
    (b"", "empty"),
    (b"[]", "not a JSON object"),
    (b'"Patient"', "not a JSON object"),
]


def test_create_with_malformed_body_is_400(client: TestClient) -> None:
    for raw, diagnostics in MALFORMED_BODIES:
        r = client.post("/fhir/Patient", content=raw, headers=FHIR_JSON)
        assert_outcome(r, 400, "invalid", diagnostics=diagnostics, label=repr(raw))
    assert history_total(client) == 0


def test_update_with_malformed_body_is_400_and_keeps_current_version(client: TestClient) -> None:
    p = create(client, patient())
    for raw, diagnostics in MALFORMED_BODIES:
        r = client.put(f"/fhir/Patient/{p['id']}", content=raw, headers=FHIR_JSON)
        assert_outcome(r, 400, "invalid", diagnostics=diagnostics, label=repr(raw))
    assert history_total(client) == 1
    assert client.get(f"/fhir/Patient/{p['id']}").json() == p


def test_create_with_unknown_or_missing_resource_type_is_400(client: TestClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"resourceType": "Patiente"}, "unknown resourceType"),
        ({"resourceType": "patient"}, "unknown resourceType"),
        ({"resourceType": ""}, "no resourceType"),
        ({"name": [{"family": "Dupont"}]}, "no resourceType"),
        ({"resourceType": 42}, "no resourceType"),
    ]
    for body, diagnostics in cases:
        r = client.post("/fhir/Patient", json=body, headers=FHIR_JSON)
        assert_outcome(
            r, 400, "invalid", expression="resourceType", diagnostics=diagnostics, label=str(body)
        )
    assert history_total(client) == 0


def test_body_type_different_from_url_type_is_400(client: TestClient) -> None:
    r = client.post("/fhir/Patient", json=observation("p1"), headers=FHIR_JSON)
    body = assert_outcome(r, 400, "invalid", expression="resourceType")
    text = body["issue"][0]["diagnostics"]
    assert "Observation" in text and "Patient" in text
    r = client.put("/fhir/Patient/abc", json=observation("p1", id="abc"), headers=FHIR_JSON)
    assert_outcome(r, 400, "invalid", expression="resourceType")
    assert history_total(client) == 0
    assert client.get("/fhir/Patient/abc").status_code == 404
    assert client.get("/fhir/Observation/abc").status_code == 404


def test_update_with_invalid_id_is_400_but_longest_valid_id_works(client: TestClient) -> None:
    for bad_id in ["bad_id", "a" * 65, "with space", "accentué", "semi;colon"]:
        r = client.put(f"/fhir/Patient/{bad_id}", json=patient(id=bad_id), headers=FHIR_JSON)
        assert_outcome(
            r, 400, "invalid", expression="id", diagnostics="not a valid FHIR id", label=bad_id
        )
    assert history_total(client) == 0
    good = "A-b.9" + "x" * 59  # exactly 64 characters of the id alphabet
    r = client.put(f"/fhir/Patient/{good}", json=patient(id=good), headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    assert client.get(f"/fhir/Patient/{good}").json()["id"] == good


def test_update_whose_body_id_differs_from_url_is_400(client: TestClient) -> None:
    p = create(client, patient())
    for body_id in ("other", None):
        body = {**p, "gender": "male"}
        if body_id is None:
            del body["id"]
        else:
            body["id"] = body_id
        r = client.put(f"/fhir/Patient/{p['id']}", json=body, headers=FHIR_JSON)
        assert_outcome(
            r, 400, "invalid", expression="id", diagnostics="does not match", label=str(body_id)
        )
    assert history_total(client) == 1
    assert client.get(f"/fhir/Patient/{p['id']}").json()["gender"] == "female"


def test_malformed_if_match_is_400(client: TestClient) -> None:
    p = create(client, patient())
    for if_match in ["abc", 'W/"x"', "W/", '"1.5"']:
        r = client.put(
            f"/fhir/Patient/{p['id']}", json=p, headers={**FHIR_JSON, "If-Match": if_match}
        )
        assert_outcome(r, 400, "invalid", diagnostics="If-Match", label=if_match)
    assert history_total(client) == 1


BAD_SEARCHES: list[tuple[str, dict[str, str], str]] = [
    ("Patient", {"birthdate": "notadate"}, "birthdate"),
    ("Patient", {"birthdate": "2024-13"}, "birthdate"),
    ("Patient", {"birthdate": "ge2024-02-30"}, "birthdate"),
    ("Patient", {"_lastUpdated": "yesterday"}, "_lastUpdated"),
    ("Observation", {"value-quantity": "abc"}, "value-quantity"),
    ("Observation", {"value-quantity": "gtten|http://unitsofmeasure.org|cm"}, "value-quantity"),
    ("RiskAssessment", {"probability": "high"}, "probability"),
    ("Patient", {"_count": "ten"}, "_count"),
    ("Patient", {"_offset": "1.5"}, "_offset"),
    ("Patient", {"family:below": "dup"}, "family:below"),
    ("Patient", {"gender:exact": "female"}, "gender:exact"),
    ("Patient", {"_summary": "everything"}, "_summary"),
]


def test_bad_search_value_is_400(client: TestClient) -> None:
    create(client, patient())
    for res_type, query, expression in BAD_SEARCHES:
        label = f"{res_type}?{query}"
        r = client.get(f"/fhir/{res_type}", params=query)
        assert_outcome(r, 400, "invalid", expression=expression, label=label)
        # the same search posted as a form fails the same way
        r = client.post(f"/fhir/{res_type}/_search", data=query)
        assert_outcome(r, 400, "invalid", expression=expression, label="POST " + label)


def test_unknown_search_parameter_in_strict_mode_is_400(client: TestClient) -> None:
    create(client, patient())
    strict = {"Prefer": "handling=strict"}
    r = client.get("/fhir/Patient", params={"shoe-size": "42"}, headers=strict)
    assert_outcome(r, 400, "invalid", expression="shoe-size", diagnostics="shoe-size")
    # a known parameter alongside does not rescue it
    r = client.get("/fhir/Patient", params={"family": "dupont", "colour": "blue"}, headers=strict)
    assert_outcome(r, 400, "invalid", expression="colour")
    r = client.post("/fhir/Patient/_search", data={"colour": "blue"}, headers=strict)
    assert_outcome(r, 400, "invalid", expression="colour")
    # lenient (default) mode answers the search
    assert client.get("/fhir/Patient", params={"shoe-size": "42"}).status_code == 200


def test_unsupported_sort_is_400(client: TestClient) -> None:
    cases = [
        ("Patient", "family"),  # string parameters are not sortable here
        ("Patient", "-shoe-size"),
        ("Observation", "date,nonsense"),
    ]
    for res_type, sort in cases:
        r = client.get(f"/fhir/{res_type}", params={"_sort": sort})
        assert_outcome(r, 400, "invalid", expression="_sort", diagnostics="sort", label=sort)


def test_base_url_accepts_only_transaction_or_batch_bundles(client: TestClient) -> None:
    r = client.post("/fhir", json=patient(), headers=FHIR_JSON)
    assert_outcome(r, 400, "invalid", diagnostics="Bundle")
    r = client.post(
        "/fhir", json={"resourceType": "Bundle", "type": "collection"}, headers=FHIR_JSON
    )
    assert_outcome(r, 400, "invalid", expression="Bundle.type", diagnostics="collection")
    r = client.post("/fhir", content=b"{not json", headers=FHIR_JSON)
    assert_outcome(r, 400, "invalid", diagnostics="JSON")
    assert history_total(client) == 0


def test_conditional_create_with_unknown_parameter_is_400(client: TestClient) -> None:
    r = client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR_JSON, "If-None-Exist": "shoe-size=42"}
    )
    assert_outcome(r, 400, "invalid", diagnostics="shoe-size")
    assert history_total(client) == 0


# -- 404, 405 and 410 ------------------------------------------------------------------------------


def test_unknown_type_in_url_is_404(client: TestClient) -> None:
    for method, path in [
        ("GET", "/fhir/Patiente"),
        ("GET", "/fhir/Patiente/1"),
        ("GET", "/fhir/Patiente/_history"),
        ("GET", "/fhir/Patiente/1/_history"),
        ("GET", "/fhir/Patiente/1/_history/1"),
        ("DELETE", "/fhir/Patiente/1"),
        ("POST", "/fhir/Patiente/_search"),
    ]:
        r = client.request(method, path)
        assert_outcome(r, 404, "not-found", diagnostics="Patiente", label=f"{method} {path}")
    body = {"resourceType": "Patiente"}
    assert_outcome(client.post("/fhir/Patiente", json=body, headers=FHIR_JSON), 404, "not-found")
    assert_outcome(
        client.put("/fhir/Patiente/x", json={**body, "id": "x"}, headers=FHIR_JSON),
        404,
        "not-found",
    )
    assert history_total(client) == 0


def test_unknown_id_and_version_are_404(client: TestClient) -> None:
    p = create(client, patient())
    assert_outcome(client.get("/fhir/Patient/nobody"), 404, "not-found", diagnostics="nobody")
    assert_outcome(client.get("/fhir/Patient/nobody/_history"), 404, "not-found")
    assert_outcome(client.get("/fhir/Patient/nobody/_history/1"), 404, "not-found")
    assert_outcome(client.get(f"/fhir/Patient/{p['id']}/_history/2"), 404, "not-found")
    assert_outcome(client.get(f"/fhir/Patient/{p['id']}/_history/one"), 404, "not-found")
    # the same id under another type is another resource
    assert_outcome(client.get(f"/fhir/Observation/{p['id']}"), 404, "not-found")


def test_read_of_deleted_resource_is_410_and_vread_of_the_deletion_too(
    client: TestClient,
) -> None:
    p = create(client, patient())
    assert client.delete(f"/fhir/Patient/{p['id']}").status_code == 204
    assert_outcome(client.get(f"/fhir/Patient/{p['id']}"), 410, "deleted", diagnostics="deleted")
    assert_outcome(client.get(f"/fhir/Patient/{p['id']}/_history/2"), 410, "deleted")
    assert client.get(f"/fhir/Patient/{p['id']}/_history/1").status_code == 200
    # a deleted resource is not found by search either
    assert client.get("/fhir/Patient", params={"_id": p["id"]}).json()["total"] == 0
    # an unsupported method is an OperationOutcome too
    assert_outcome(client.patch(f"/fhir/Patient/{p['id']}", json={}), 405, "not-supported")


# -- 412 -------------------------------------------------------------------------------------------


def test_stale_if_match_is_412_and_stores_nothing(client: TestClient) -> None:
    p = create(client, patient())
    pid = p["id"]
    ok = client.put(f"/fhir/Patient/{pid}", json={**p, "gender": "male"}, headers=FHIR_JSON)
    assert ok.status_code == 200
    for stale in ('W/"1"', 'W/"3"', '"1"'):
        r = client.put(
            f"/fhir/Patient/{pid}",
            json={**p, "gender": "other"},
            headers={**FHIR_JSON, "If-Match": stale},
        )
        assert_outcome(r, 412, "conflict", diagnostics="version", label=stale)
    assert history_total(client) == 2
    assert client.get(f"/fhir/Patient/{pid}").json()["gender"] == "male"
    # If-Match on a resource that does not exist cannot hold either
    r = client.put(
        "/fhir/Patient/new-one",
        json=patient(id="new-one"),
        headers={**FHIR_JSON, "If-Match": 'W/"1"'},
    )
    assert_outcome(r, 412, "conflict")
    assert history_total(client) == 2


def test_conditional_create_matching_several_is_412(client: TestClient) -> None:
    create(client, patient(family="Martin"))
    create(client, patient(family="Martin"))
    r = client.post(
        "/fhir/Patient",
        json=patient(family="Martin"),
        headers={**FHIR_JSON, "If-None-Exist": "family=martin"},
    )
    assert_outcome(r, 412, "conflict", diagnostics="matched")
    assert history_total(client, "/fhir/Patient/_history") == 2


# -- 422: well-formed JSON that is not a valid resource ---------------------------------------------


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


VALIDATION_CODES = ("structure", "required", "value", "invalid")
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("wrong-datatype", patient(active="yes"), "Patient.active", "boolean"),
    ("list-for-string", patient(name=[{"family": ["Dupont"]}]), "Patient.name[0].family", ""),
    ("bad-gender-code", patient(gender="femme"), "Patient.gender", "femme"),
    ("unknown-element", patient(shoeSize=42), "Patient.shoeSize", "shoeSize"),
    ("month-13", patient(birthDate="1980-13-01"), "Patient.birthDate", ""),
    ("french-date", patient(birthDate="17/05/1980"), "Patient.birthDate", ""),
    ("bad-status-code", observation("p1", status="done"), "Observation.status", "done"),
    ("no-status", _without(observation("p1"), "status"), "Observation.status", "required"),
    ("no-code", _without(observation("p1"), "code"), "Observation.code", "required"),
    (
        "bad-datetime",
        observation("p1", effectiveDateTime="2024-03-05 10:15"),
        "Observation.effectiveDateTime",
        "",
    ),
    (
        "string-for-decimal",
        observation("p1", valueQuantity={"value": "170", "system": "http://unitsofmeasure.org"}),
        "Observation.valueQuantity.value",
        "",
    ),
]


def test_invalid_resource_create_is_422(client: TestClient) -> None:
    for label, body, expression, diagnostics in INVALID:
        r = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR_JSON)
        assert_outcome(
            r, 422, VALIDATION_CODES, expression=expression, diagnostics=diagnostics, label=label
        )
    assert history_total(client) == 0


def test_invalid_resource_update_is_422_and_keeps_current(client: TestClient) -> None:
    person = create(client, patient())
    originals = {"Patient": person, "Observation": create(client, observation(person["id"]))}
    for label, body, expression, diagnostics in INVALID:
        res_type = body["resourceType"]
        rid = originals[res_type]["id"]
        r = client.put(f"/fhir/{res_type}/{rid}", json={**body, "id": rid}, headers=FHIR_JSON)
        assert_outcome(
            r, 422, VALIDATION_CODES, expression=expression, diagnostics=diagnostics, label=label
        )
    assert history_total(client) == 2
    for res_type, original in originals.items():
        assert client.get(f"/fhir/{res_type}/{original['id']}").json() == original


def test_impossible_calendar_date_is_422(client: TestClient) -> None:
    r = client.post("/fhir/Patient", json=patient(birthDate="1980-02-30"), headers=FHIR_JSON)
    assert_outcome(r, 422, VALIDATION_CODES, expression="Patient.birthDate")
    assert history_total(client) == 0


def test_missing_required_element_points_at_the_element(client: TestClient) -> None:
    r = client.post(
        "/fhir/Observation", json=_without(observation("p1"), "code"), headers=FHIR_JSON
    )
    assert_outcome(r, 422, "required", expression="Observation.code")
    obs = observation("p1", component=[{"code": {"text": "ok"}}, {"valueString": "no code"}])
    r = client.post("/fhir/Observation", json=obs, headers=FHIR_JSON)
    assert_outcome(r, 422, "required", expression="Observation.component[1].code")
    assert history_total(client) == 0


def test_several_problems_are_all_reported(client: TestClient) -> None:
    r = client.post(
        "/fhir/Patient",
        json=patient(gender="femme", active="yes", birthDate="1980-13-01"),
        headers=FHIR_JSON,
    )
    body = assert_outcome(r, 422, "structure")
    expressions = {e for i in body["issue"] for e in i.get("expression", [])}
    assert {"Patient.gender", "Patient.active", "Patient.birthDate"} <= expressions
    assert history_total(client) == 0


# -- robustness: garbage never produces a 500 -------------------------------------------------------


def test_bad_since_on_history_is_400(client: TestClient) -> None:
    create(client, patient())
    assert_outcome(client.get("/fhir/_history?_since=not-a-date"), 400, "invalid")


def test_bad_paging_on_history_is_400(client: TestClient) -> None:
    create(client, patient())
    assert_outcome(client.get("/fhir/Patient/_history?_count=ten"), 400, "invalid")
    assert_outcome(client.get("/fhir/_history?_offset=x"), 400, "invalid")


def _nested_extension(levels: int) -> dict[str, Any]:
    ext: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "v"}
    for _ in range(levels):
        ext = {"url": "http://example.org/nested", "extension": [ext]}
    return ext


def test_deeply_nested_extension_is_400(client: TestClient) -> None:
    """A resource nesting deeper than the fixed limit is refused before any recursive step
    (schema validation, orjson, the indexer) can blow up: it was a 500."""
    deep = patient(extension=[_nested_extension(200)])
    r = client.post("/fhir/Patient", json=deep, headers=FHIR_JSON)
    assert_outcome(r, 400, "too-costly", diagnostics="nested")
    r = client.put("/fhir/Patient/deep", json={**deep, "id": "deep"}, headers=FHIR_JSON)
    assert_outcome(r, 400, "too-costly", diagnostics="nested")
    entry = {"resource": deep, "request": {"method": "POST", "url": "Patient"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    assert_outcome(client.post("/fhir", json=bundle, headers=FHIR_JSON), 400, "too-costly")
    # with a NUL inside, the NUL check walked it first, recursively
    levels = 400  # 800 JSON levels: orjson parses it, Python's encoder could not write it
    nul = '{"resourceType":"Patient","extension":'
    nul += '[{"url":"http://example.org/nested","extension":' * levels
    nul += '[{"url":"http://example.org/\\u0000"}]'
    nul += "}]" * levels + "}"
    r = client.post("/fhir/Patient", content=nul, headers=FHIR_JSON)
    assert_outcome(r, 400, "too-costly")
    assert history_total(client) == 0
    # nesting that real resources use is accepted
    fine = patient(extension=[_nested_extension(20)])
    assert client.post("/fhir/Patient", json=fine, headers=FHIR_JSON).status_code == 201


def test_search_with_too_many_terms_is_400(client: TestClient) -> None:
    """1,000 search terms made SQLite's expression tree too deep (a 500): the number of terms is
    capped by the ``max_search_terms`` setting, whether ANDed, ORed or chained."""
    create(client, patient())
    many_and = [("family", f"x{i}") for i in range(1000)]
    assert_outcome(client.get("/fhir/Patient", params=many_and), 400, "too-costly")
    many_or = {"family": ",".join(f"x{i}" for i in range(1000))}
    assert_outcome(client.get("/fhir/Patient", params=many_or), 400, "too-costly")
    posted = client.post(
        "/fhir/Patient/_search",
        content="&".join(f"gender=female&_id=x{i}" for i in range(300)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_outcome(posted, 400, "too-costly")
    chain = "general-practitioner:Practitioner" + ".organization:Organization.partof" * 300
    assert_outcome(client.get("/fhir/Patient", params={chain: "x"}), 400, "too-costly")
    # up to the cap, a search runs
    fifty = [("family", "Dupont")] + [("gender", "female")] * 49
    assert client.get("/fhir/Patient", params=fifty).json()["total"] == 1


# -- OperationOutcome.issue.expression: FHIRPath, one issue per problem ------------------------------

FHIRPATH = re.compile(r"^[A-Z][A-Za-z]+(\.[a-z_][A-Za-z0-9_]*(\[\d+\])?)*$")


def _expressions(body: dict[str, Any]) -> list[str]:
    return [e for i in body["issue"] for e in i.get("expression", [])]


def test_operation_outcome_expression_is_fhirpath(client: TestClient) -> None:
    """Inside a Bundle, a resource's elements follow ``resource`` directly
    (``Bundle.entry[0].resource.code``): ``...resource.Observation.code`` is no FHIRPath; a
    choice element is named without ``[x]``."""
    bad = _without(observation("p1"), "code")
    entry = {"resource": bad, "request": {"method": "POST", "url": "Observation"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    body = assert_outcome(client.post("/fhir", json=bundle, headers=FHIR_JSON), 422, "required")
    assert _expressions(body) == ["Bundle.entry[0].resource.code"]
    sub = {"resourceType": "Substance", "code": {"text": "s"}, "ingredient": [{"quantity": {}}]}
    body = assert_outcome(
        client.post("/fhir/Substance", json=sub, headers=FHIR_JSON), 422, "required"
    )
    assert _expressions(body) == ["Substance.ingredient[0].substance"]
    for expression in _expressions(body):
        assert FHIRPATH.match(expression), expression


def test_unknown_element_is_named(client: TestClient) -> None:
    body = patient(foo=1, baz=2)
    body["name"][0]["bar"] = "x"
    outcome = assert_outcome(
        client.post("/fhir/Patient", json=body, headers=FHIR_JSON), 422, "structure"
    )
    assert sorted(_expressions(outcome)) == ["Patient.baz", "Patient.foo", "Patient.name[0].bar"]
    for issue in outcome["issue"]:
        assert issue["expression"][0].rsplit(".", 1)[1] in issue["diagnostics"]
    assert history_total(client) == 0


def test_every_missing_required_element_is_reported(client: TestClient) -> None:
    """Observation.status (a StructureDefinition minimum) and Observation.code (in the schema)
    are both missing: both are reported, also next to another problem."""
    bare = {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}
    outcome = assert_outcome(
        client.post("/fhir/Observation", json=bare, headers=FHIR_JSON), 422, "required"
    )
    assert sorted(_expressions(outcome)) == ["Observation.code", "Observation.status"]
    worse = {**bare, "valueBoolean": "yes"}
    outcome = assert_outcome(
        client.post("/fhir/Observation", json=worse, headers=FHIR_JSON), 422, VALIDATION_CODES
    )
    assert sorted(_expressions(outcome)) == [
        "Observation.code",
        "Observation.status",
        "Observation.valueBoolean",
    ]
    assert history_total(client) == 0


def test_problems_inside_a_nested_resource_are_located_not_echoed(client: TestClient) -> None:
    """A resource inside a resource (a Bundle entry, a contained one) failed as a whole with
    the schema's "not valid under any of the given schemas" and its full JSON, names included,
    in the diagnostics: its own problems are reported instead, each at its FHIRPath."""
    inner = _without(observation("p1", status="done"), "code")
    inner["note"] = [{"text": "Secret-Clinical-Note"}]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]}
    r = client.post("/fhir/Bundle", json=bundle, headers=FHIR_JSON)
    outcome = assert_outcome(r, 422, VALIDATION_CODES)
    assert sorted(_expressions(outcome)) == [
        "Bundle.entry[0].resource.code",
        "Bundle.entry[0].resource.status",
    ]
    assert "Secret-Clinical-Note" not in r.text
    contained = patient(contained=[{"resourceType": "Observation", "id": "o1", "code": {}}])
    r = client.post("/fhir/Patient", json=contained, headers=FHIR_JSON)
    outcome = assert_outcome(r, 422, "required")
    assert _expressions(outcome) == ["Patient.contained[0].status"]
    assert history_total(client) == 0


def test_a_resource_inside_of_an_unknown_type_or_none_is_refused_at_its_place(
    client: TestClient,
) -> None:
    """Each type's schema checks a resource inside it (contained, a Bundle entry) only for a
    known resourceType, the resource itself being validated on its own: one of no known type, or
    of none, is refused where it sits and nothing is stored."""
    for inner in ({"resourceType": "Patiente", "id": "x"}, {"id": "x"}):
        r = client.post("/fhir/Patient", json=patient(contained=[inner]), headers=FHIR_JSON)
        outcome = assert_outcome(r, 422, VALIDATION_CODES)
        assert all(e.startswith("Patient.contained[0]") for e in _expressions(outcome)), outcome
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]}
        r = client.post("/fhir/Bundle", json=bundle, headers=FHIR_JSON)
        outcome = assert_outcome(r, 422, VALIDATION_CODES)
        assert all(e.startswith("Bundle.entry[0].resource") for e in _expressions(outcome))
    assert history_total(client) == 0
