"""Search: every parameter type, modifiers, prefixes, paging, sorting and counts, on every backend."""

from __future__ import annotations

import string
import unicodedata
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carnet.app import Services, create_app
from tests.spec.helpers import FHIR_JSON, observation, patient
from tests.support.auth import bearer

NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return dict(r.json())


def search(
    client: TestClient, res_type: str, params: Any, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    r = client.get(f"/fhir/{res_type}", params=params, headers=headers or {})
    assert r.status_code == 200, r.text
    bundle = dict(r.json())
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def ids(client: TestClient, res_type: str, params: Any) -> set[str]:
    bundle = search(client, res_type, params)
    found = [r["id"] for r in matches(bundle)]
    assert len(found) == len(set(found)), "a resource appears twice in one page"
    assert bundle["total"] == len(found), "test pages are small: total equals the entries"
    return set(found)


# -- _id, _lastUpdated, paging, _summary, _sort -------------------------------------------------


def test_id_search_and_or(client: TestClient) -> None:
    a, b, _c = (create(client, patient())["id"] for _ in range(3))
    assert ids(client, "Patient", {"_id": a}) == {a}
    assert ids(client, "Patient", {"_id": f"{a},{b}"}) == {a, b}
    assert ids(client, "Patient", [("_id", f"{a},{b}"), ("_id", b)]) == {b}
    assert ids(client, "Patient", {"_id": "nobody"}) == set()
    # _id of another type finds nothing here
    assert ids(client, "Observation", {"_id": a}) == set()


def test_last_updated_prefixes(client: TestClient) -> None:
    first = create(client, patient())
    second = create(client, patient())
    t1, t2 = first["meta"]["lastUpdated"], second["meta"]["lastUpdated"]
    assert t1 <= t2
    year = t1[:4]
    assert ids(client, "Patient", {"_lastUpdated": year}) == {first["id"], second["id"]}
    assert ids(client, "Patient", {"_lastUpdated": f"gt{int(year) + 1}"}) == set()
    assert ids(client, "Patient", {"_lastUpdated": f"lt{year}"}) == set()
    assert ids(client, "Patient", {"_lastUpdated": f"ge{t1[:10]}"}) >= {first["id"]}
    assert ids(client, "Patient", {"_lastUpdated": f"lt{int(year) + 1}-01-01"}) == {
        first["id"],
        second["id"],
    }


def test_last_updated_equals_its_own_meta_last_updated(client: TestClient) -> None:
    p = create(client, patient())
    stamp = p["meta"]["lastUpdated"]
    assert ids(client, "Patient", {"_lastUpdated": stamp}) == {p["id"]}
    assert ids(client, "Patient", {"_lastUpdated": f"le{stamp}"}) == {p["id"]}
    assert ids(client, "Patient", {"_lastUpdated": f"gt{stamp}"}) == set()


def test_count_paging_links_visit_every_match_once(client: TestClient) -> None:
    created = {create(client, patient(family="Page"))["id"] for _ in range(5)}
    create(client, patient(family="Autre"))
    seen: list[str] = []
    bundle = search(client, "Patient", {"family": "page", "_count": "2"})
    pages = 0
    while True:
        pages += 1
        assert bundle["total"] == 5
        page = [r["id"] for r in matches(bundle)]
        assert len(page) <= 2
        seen += page
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "self" in links
        if pages > 1:
            assert "previous" in links
        if "next" not in links:
            break
        url = urlsplit(links["next"])
        assert url.path == "/fhir/Patient"
        query = parse_qsl(url.query)
        assert ("family", "page") in query  # criteria survive paging
        bundle = search(client, "Patient", query)
    assert pages == 3
    assert len(seen) == 5 and set(seen) == created


def test_paging_links_carry_each_parameter_once(client: TestClient) -> None:
    for _ in range(3):
        create(client, patient())
    bundle = search(client, "Patient", {"_count": "2"})
    for link in bundle["link"]:
        names = [k for k, _ in parse_qsl(urlsplit(link["url"]).query)]
        assert len(names) == len(set(names)), link["url"]


def test_count_zero_and_summary_count(client: TestClient) -> None:
    for fam in ("Count", "Count", "Count", "Autre"):
        create(client, patient(family=fam))
    bundle = search(client, "Patient", {"family": "count", "_summary": "count"})
    assert bundle["total"] == 3
    assert "entry" not in bundle
    assert search(client, "Patient", {"_summary": "count"})["total"] == 4
    bundle = search(client, "Patient", {"family": "count", "_count": "0"})
    assert bundle["total"] == 3
    assert matches(bundle) == []


def test_sort_by_last_updated(client: TestClient) -> None:
    made = [create(client, patient())["id"] for _ in range(3)]
    asc = [p["id"] for p in matches(search(client, "Patient", {"_sort": "_lastUpdated"}))]
    assert asc == made
    desc = [p["id"] for p in matches(search(client, "Patient", {"_sort": "-_lastUpdated"}))]
    assert desc == list(reversed(made))
    by_id = [p["id"] for p in matches(search(client, "Patient", {"_sort": "_id"}))]
    assert by_id == sorted(made)


def test_sort_by_token_then_id(client: TestClient) -> None:
    made = {g: create(client, patient(gender=g))["id"] for g in ("male", "female", "unknown")}
    got = [p["gender"] for p in matches(search(client, "Patient", {"_sort": "gender"}))]
    assert got == sorted(made)
    got = [p["gender"] for p in matches(search(client, "Patient", {"_sort": "-gender"}))]
    assert got == sorted(made, reverse=True)


def test_sort_by_birthdate(client: TestClient) -> None:
    dates = ["1990-01-01", "1950-06-15", "2001-12-31"]
    for d in dates:
        create(client, patient(birthDate=d))
    got = [p["birthDate"] for p in matches(search(client, "Patient", {"_sort": "birthdate"}))]
    assert got == sorted(dates)
    got = [p["birthDate"] for p in matches(search(client, "Patient", {"_sort": "-birthdate"}))]
    assert got == sorted(dates, reverse=True)


def test_sort_by_observation_date(client: TestClient) -> None:
    p = create(client, patient())["id"]
    made = [
        create(client, observation(p, effectiveDateTime=when))
        for when in ("2024-03-05T10:00:00Z", "2021-01-01", "2023-06-15T08:00:00+02:00")
    ]
    by_date = [o["id"] for o in sorted(made, key=lambda o: o["effectiveDateTime"][:10])]
    asc = [o["id"] for o in matches(search(client, "Observation", {"_sort": "date"}))]
    assert asc == by_date
    desc = [o["id"] for o in matches(search(client, "Observation", {"_sort": "-date"}))]
    assert desc == list(reversed(by_date))


def test_resources_without_the_sort_value_come_last_in_both_directions(client: TestClient) -> None:
    """The same order on every backend (SQLite puts NULLs first, PostgreSQL last, by default)."""
    undated = create(client, patient())
    del undated["birthDate"]
    undated = client.put(f"/fhir/Patient/{undated['id']}", json=undated).json()
    old = create(client, patient(birthDate="1950-06-15"))
    young = create(client, patient(birthDate="2001-12-31"))
    asc = [p["id"] for p in matches(search(client, "Patient", {"_sort": "birthdate"}))]
    assert asc == [old["id"], young["id"], undated["id"]]
    desc = [p["id"] for p in matches(search(client, "Patient", {"_sort": "-birthdate"}))]
    assert desc == [young["id"], old["id"], undated["id"]]


def test_unknown_parameter_is_reported_and_ignored_in_lenient_mode(client: TestClient) -> None:
    a = create(client, patient(family="Lenient"))["id"]
    create(client, patient(family="Other"))
    bundle = search(client, "Patient", {"family": "lenient", "shoe-size": "42"})
    assert [r["id"] for r in matches(bundle)] == [a]
    assert bundle["total"] == 1
    outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    outcome = outcomes[0]["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("shoe-size" in i["diagnostics"] for i in outcome["issue"])
    assert all(i["severity"] in ("warning", "information") for i in outcome["issue"])
    # the ignored parameter is not echoed as if it had been applied
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert "shoe-size" not in self_link
    # a search with only known parameters carries no outcome entry
    clean = search(client, "Patient", {"family": "lenient"})
    assert all(e["search"]["mode"] == "match" for e in clean["entry"])


def test_post_search_form_equals_get(client: TestClient) -> None:
    a = create(client, patient(family="Formulaire", gender="male"))["id"]
    create(client, patient(family="Formulaire"))
    r = client.post("/fhir/Patient/_search", data={"family": "formul", "gender": "male"})
    assert r.status_code == 200
    assert [x["id"] for x in matches(r.json())] == [a]
    assert r.json()["total"] == 1


def test_deleted_and_superseded_versions_are_not_found(client: TestClient) -> None:
    a = create(client, patient(family="Ancien"))
    b = create(client, patient(family="Efface"))
    client.put(f"/fhir/Patient/{a['id']}", json={**a, "name": [{"family": "Nouveau"}]})
    assert client.delete(f"/fhir/Patient/{b['id']}").status_code == 204
    assert ids(client, "Patient", {"family": "ancien"}) == set()
    assert ids(client, "Patient", {"family": "nouveau"}) == {a["id"]}
    assert ids(client, "Patient", {"family": "efface"}) == set()
    assert search(client, "Patient", {"_summary": "count"})["total"] == 1


# -- token -----------------------------------------------------------------------------------------


def test_token_forms(client: TestClient) -> None:
    p = create(client, patient())["id"]
    height = create(client, observation(p, code="8302-2"))["id"]
    weight = create(client, observation(p, code="29463-7"))["id"]
    local = observation(p)
    local["code"] = {"coding": [{"code": "8302-2"}]}  # no system
    no_system = create(client, local)["id"]
    other = observation(p)
    other["code"] = {"coding": [{"system": "http://example.org/codes", "code": "8302-2"}]}
    other_system = create(client, other)["id"]
    everything = {height, weight, no_system, other_system}

    assert ids(client, "Observation", {"code": "8302-2"}) == {height, no_system, other_system}
    assert ids(client, "Observation", {"code": f"{LOINC}|8302-2"}) == {height}
    assert ids(client, "Observation", {"code": f"{LOINC}|"}) == {height, weight}
    assert ids(client, "Observation", {"code": "|8302-2"}) == {no_system}
    assert ids(client, "Observation", {"code": f"{LOINC}|29463-7,|8302-2"}) == {weight, no_system}
    assert ids(client, "Observation", {"code:not": "8302-2"}) == {weight}
    assert ids(client, "Observation", {"code:not": f"{LOINC}|8302-2"}) == everything - {height}
    assert ids(client, "Observation", {"code": "8302"}) == set()  # tokens are not prefixes
    assert ids(client, "Observation", {"code": "http://snomed.info/sct|8302-2"}) == set()
    assert ids(client, "Observation", {"status": "final"}) == everything
    assert ids(client, "Observation", {"status": "amended"}) == set()
    assert ids(client, "Observation", {"category": "vital-signs"}) == everything


def test_gender_token_and_and_or(client: TestClient) -> None:
    f = create(client, patient(family="Genre", gender="female"))["id"]
    m = create(client, patient(family="Genre", gender="male"))["id"]
    u = create(client, patient(family="Autre", gender="unknown"))["id"]
    assert ids(client, "Patient", {"gender": "female"}) == {f}
    assert ids(client, "Patient", {"gender": "female,male"}) == {f, m}
    assert ids(client, "Patient", {"gender:not": "female"}) == {m, u}
    assert ids(client, "Patient", [("gender", "female,male"), ("family", "autre")]) == set()
    assert ids(client, "Patient", [("gender", "female,unknown"), ("family", "autre")]) == {u}


def test_identifier_search_on_nir(client: TestClient) -> None:
    nir = "280057512345674"
    a = create(client, patient(identifier=[{"system": NIR_SYSTEM, "value": nir}]))["id"]
    b = create(client, patient(identifier=[{"system": NIR_SYSTEM, "value": "180057512345627"}]))[
        "id"
    ]
    other = create(client, patient(identifier=[{"system": "urn:example:mrn", "value": nir}]))["id"]
    assert ids(client, "Patient", {"identifier": f"{NIR_SYSTEM}|{nir}"}) == {a}
    assert ids(client, "Patient", {"identifier": nir}) == {a, other}
    assert ids(client, "Patient", {"identifier": f"{NIR_SYSTEM}|"}) == {a, b}
    assert ids(client, "Patient", {"identifier": f"{NIR_SYSTEM}|{nir[:-1]}"}) == set()


# -- string ----------------------------------------------------------------------------------------


def test_string_prefix_case_and_accent_insensitive(client: TestClient) -> None:
    lef = create(client, patient(family="Lefèvre", given="Élodie"))["id"]
    lef2 = create(client, patient(family="LEFEBVRE", given="Zoé"))["id"]
    dup = create(client, patient(family="Dupont", given="Jean-Pierre"))["id"]
    assert ids(client, "Patient", {"family": "lefe"}) == {lef, lef2}
    assert ids(client, "Patient", {"family": "LÉFÈV"}) == {lef}
    assert ids(client, "Patient", {"family": "lefevre"}) == {lef}
    assert ids(client, "Patient", {"family": "efe"}) == set()  # prefix, not substring
    assert ids(client, "Patient", {"family": "lefèvres"}) == set()
    assert ids(client, "Patient", {"given": "elo"}) == {lef}
    assert ids(client, "Patient", {"given": "jean-p"}) == {dup}
    assert ids(client, "Patient", {"name": "zoe"}) == {lef2}
    assert ids(client, "Patient", {"name": "dupont"}) == {dup}
    assert ids(client, "Patient", {"family": "dup,lefèvre"}) == {dup, lef}
    assert ids(client, "Patient", [("family", "lef"), ("given", "zo")]) == {lef2}
    assert ids(client, "Patient", [("family", "lef"), ("family", "lefeb")]) == {lef2}


def test_string_exact(client: TestClient) -> None:
    lef = create(client, patient(family="Lefèvre"))["id"]
    create(client, patient(family="Lefèvres"))
    assert ids(client, "Patient", {"family:exact": "Lefèvre"}) == {lef}
    assert ids(client, "Patient", {"family:exact": "lefèvre"}) == set()
    assert ids(client, "Patient", {"family:exact": "Lefevre"}) == set()
    assert ids(client, "Patient", {"family:exact": "Lef"}) == set()


def test_address_string_params(client: TestClient) -> None:
    addr = [{"line": ["12 rue de la Paix"], "city": "Saint-Étienne", "postalCode": "42000"}]
    a = create(client, patient(address=addr))["id"]
    create(client, patient(address=[{"city": "Paris", "postalCode": "75001"}]))
    assert ids(client, "Patient", {"address-city": "saint-eti"}) == {a}
    assert ids(client, "Patient", {"address-postalcode": "42"}) == {a}
    assert ids(client, "Patient", {"address": "12 rue"}) == {a}
    assert ids(client, "Patient", {"address": "saint"}) == {a}
    assert ids(client, "Patient", {"address-city": "lyon"}) == set()


def test_escaped_comma_is_part_of_the_value(client: TestClient) -> None:
    a = create(client, patient(family="Durand, Jr"))["id"]
    assert ids(client, "Patient", {"family": "durand\\, jr"}) == {a}


# -- date ------------------------------------------------------------------------------------------


def test_date_prefixes_on_partial_dates(client: TestClient) -> None:
    born = {
        d: create(client, patient(birthDate=d))["id"]
        for d in ("2023-12-31", "2024-03-05", "2024-03-20", "2024-04-01", "2024")
    }

    def found(query: str) -> set[str]:
        got = ids(client, "Patient", {"birthdate": query})
        return {d for d, i in born.items() if i in got}

    assert found("2024") == {"2024-03-05", "2024-03-20", "2024-04-01", "2024"}
    assert found("2024-03") == {"2024-03-05", "2024-03-20"}
    assert found("2024-03-05") == {"2024-03-05"}
    assert found("eq2024-03-05") == {"2024-03-05"}
    assert found("ne2024-03") == {"2023-12-31", "2024-04-01", "2024"}
    assert found("lt2024-03-05") == {"2023-12-31", "2024"}
    assert found("le2024-03-05") == {"2023-12-31", "2024-03-05", "2024"}
    assert found("gt2024-03-05") == {"2024-03-20", "2024-04-01", "2024"}
    assert found("ge2024-03-20") == {"2024-03-20", "2024-04-01", "2024"}
    assert found("sa2024-03") == {"2024-04-01"}
    assert found("eb2024-03") == {"2023-12-31"}
    assert "2024-03-05" in found("ap2024-03-05")
    assert "2023-12-31" not in found("ap2024-03-05")
    assert found("2023,2024-04") == {"2023-12-31", "2024-04-01"}
    assert found("2025") == set()


def test_observation_date_with_time_zone(client: TestClient) -> None:
    p = create(client, patient())["id"]
    # 00:30 in Paris is the previous day in UTC
    late = create(client, observation(p, effectiveDateTime="2024-03-05T00:30:00+01:00"))["id"]
    noon = create(client, observation(p, effectiveDateTime="2024-03-05T12:00:00Z"))["id"]
    assert ids(client, "Observation", {"date": "2024-03-05"}) == {noon}
    assert ids(client, "Observation", {"date": "2024-03-04"}) == {late}
    assert ids(client, "Observation", {"date": "ge2024-03-04T23:00:00Z"}) == {late, noon}
    assert ids(client, "Observation", {"date": "lt2024-03-05T12:00:00Z"}) == {late}
    assert ids(client, "Observation", {"date": "2024-03"}) == {late, noon}


# -- reference ---------------------------------------------------------------------------------


def test_reference_forms(client: TestClient) -> None:
    a = create(client, patient())["id"]
    b = create(client, patient())["id"]
    oa = create(client, observation(a))["id"]
    ob = create(client, observation(b))["id"]
    grp = observation(a)
    grp["subject"] = {"reference": f"Group/{a}"}  # same id, another type
    og = create(client, grp)["id"]
    assert ids(client, "Observation", {"subject": f"Patient/{a}"}) == {oa}
    assert ids(client, "Observation", {"subject:Patient": a}) == {oa}
    assert ids(client, "Observation", {"subject:Group": a}) == {og}
    assert ids(client, "Observation", {"subject": a}) == {oa, og}
    assert ids(client, "Observation", {"patient": a}) == {oa}
    assert ids(client, "Observation", {"patient": f"Patient/{b}"}) == {ob}
    assert ids(client, "Observation", {"subject": f"Patient/{a},Patient/{b}"}) == {oa, ob}
    assert ids(client, "Observation", {"subject": f"http://127.0.0.1/fhir/Patient/{b}"}) == {ob}
    assert ids(client, "Observation", {"subject": "Patient/nobody"}) == set()


# -- quantity and number -------------------------------------------------------------------------


def test_quantity_prefixes_and_units(client: TestClient) -> None:
    p = create(client, patient())["id"]
    by_value = {v: create(client, observation(p, value=v))["id"] for v in (90.0, 100.0, 170.0)}
    kg = observation(p, value=170.0)
    kg["valueQuantity"] = {"value": 170.0, "unit": "kg", "system": UCUM, "code": "kg"}
    kg_id = create(client, kg)["id"]

    def found(query: str) -> set[str]:
        got = ids(client, "Observation", {"value-quantity": query})
        return {v for v, i in by_value.items() if i in got} | ({"kg"} if kg_id in got else set())

    assert found(f"gt100|{UCUM}|cm") == {170.0}
    assert found(f"ge100|{UCUM}|cm") == {100.0, 170.0}
    assert found(f"lt100|{UCUM}|cm") == {90.0}
    assert found("le100||cm") == {90.0, 100.0}
    assert found("170") == {170.0, "kg"}
    assert found("170|http://unitsofmeasure.org|kg") == {"kg"}
    assert found("170||kg") == {"kg"}
    assert found("gt100") == {170.0, "kg"}
    assert found("ne100|http://unitsofmeasure.org|cm") == {90.0, 170.0}
    assert found("100.4") == set()  # precision of 100.4 is [100.35, 100.45)
    assert found("100.0") == {100.0}
    assert found(f"170|{UCUM}|[lb_av]") == set()
    assert found(f"90,170|{UCUM}|kg") == {90.0, "kg"}


def test_number_prefixes(client: TestClient) -> None:
    p = create(client, patient())["id"]

    def risk(probability: float) -> str:
        body = {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": f"Patient/{p}"},
            "prediction": [{"probabilityDecimal": probability}],
        }
        return str(create(client, body)["id"])

    low, mid, high = risk(0.1), risk(0.5), risk(0.9)
    assert ids(client, "RiskAssessment", {"probability": "0.5"}) == {mid}
    assert ids(client, "RiskAssessment", {"probability": "gt0.5"}) == {high}
    assert ids(client, "RiskAssessment", {"probability": "ge0.5"}) == {mid, high}
    assert ids(client, "RiskAssessment", {"probability": "lt0.5"}) == {low}
    assert ids(client, "RiskAssessment", {"probability": "ne0.5"}) == {low, high}
    assert ids(client, "RiskAssessment", {"probability": "0.1,0.9"}) == {low, high}
    assert ids(client, "RiskAssessment", {"probability": "0.55"}) == set()


# -- property: a name is found by every prefix of its normalised form ---------------------------

NAME_ALPHABET = string.ascii_letters + "éèêëàâäîïôöûüçñÉÈÇÅßæœ' -"


def normalised(text: str) -> str:
    """Case- and accent-folded form, per the FHIR string-search rules (independent of carnet)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


@pytest.fixture
def sqlite_client(sqlite_services: Services) -> Any:
    with TestClient(
        create_app(sqlite_services.settings, sqlite_services),
        base_url="http://127.0.0.1",
        headers=bearer(sqlite_services),
    ) as c:
        yield c


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    family=st.text(NAME_ALPHABET, min_size=1, max_size=30).filter(lambda s: normalised(s) != ""),
    mangle=st.randoms(use_true_random=False),
)
def test_names_are_found_by_every_prefix(
    sqlite_client: TestClient, family: str, mangle: Any
) -> None:
    pid = create(sqlite_client, patient(family=family))["id"]
    norm = normalised(family)
    for n in range(1, len(norm) + 1):
        prefix = norm[:n]
        # the client may type the prefix in any case
        typed = "".join(c.upper() if mangle.random() < 0.5 else c for c in prefix)
        got = ids(sqlite_client, "Patient", {"_id": pid, "family": typed})
        assert got == {pid}, (family, typed)
    assert ids(sqlite_client, "Patient", {"_id": pid, "family:exact": family}) == {pid}
    if len(norm) < 24:
        longer = norm + "q"
        assert ids(sqlite_client, "Patient", {"_id": pid, "family": longer}) == set()
