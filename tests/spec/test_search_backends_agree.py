"""Generative: SQLite and PostgreSQL return the same search results.

Hypothesis draws a small set of Patients and Observations (names with accents and hyphens, genders,
birth dates and effective dates at every precision, codes with and without systems, quantities with
units, references) and writes it, with the same ids, to a SQLite and a PostgreSQL store; then it
draws searches of one or two criteria (string :exact/:contains/:missing, token system|code and
:not, dates with prefixes at several precisions, quantities, references, chains) with _sort and
_count, and asserts that both stores answer the
same status, the same total and the same ids in the same order (the engine always orders, by the
sort keys, then the id). Both stores receive every example's writes, so they hold the same data
throughout; each example's ids are new.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carnet.app import build_services, create_app
from carnet.settings import Settings
from tests.support.auth import bearer
from tests.support.migrated_store import PostgresTemplate, SqliteTemplate

pytestmark = pytest.mark.postgres

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
FAMILIES = ["Dupont", "Durand", "Lefèvre", "Dupont-Moreau", "Éloi", "du Pont"]
GIVENS = ["Marie", "Jean", "Zoé"]
GENDERS = ["female", "male", "other", "unknown"]
CODES = [("8302-2", LOINC), ("29463-7", LOINC), ("8867-4", LOINC), ("X1", "urn:local")]
UNITS = ["cm", "kg", "g", "mg", "/min"]
YEARS = [1979, 1980, 2024]

_example = itertools.count()


@dataclass
class Stores:
    sqlite: TestClient
    postgres: TestClient


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_sqlite: SqliteTemplate,
    migrated_postgres: PostgresTemplate,
) -> Iterator[Stores]:
    clients = []
    built = []
    sqlite_data = tmp_path_factory.mktemp("sqlite") / "data"
    migrated_sqlite.copy_into(sqlite_data)
    for data, url in (
        (sqlite_data, ""),
        (tmp_path_factory.mktemp("postgres") / "data", migrated_postgres.clone("backends_agree")),
    ):
        config = Settings.from_env(
            {}, data_dir=str(data), database_url=url, public_base_url="http://127.0.0.1"
        )
        services = build_services(config, migrate=False)  # both copies of the session's template
        built.append(services)
        client = TestClient(
            create_app(config, services), base_url="http://127.0.0.1", headers=bearer(services)
        )
        clients.append(client.__enter__())
    try:
        yield Stores(*clients)
    finally:
        for client in clients:
            client.__exit__(None, None, None)
        for services in built:
            services.close()


# -- values at several precisions -------------------------------------------------------------------


@st.composite
def dates(draw: st.DrawFn, *, times: bool) -> str:
    year = draw(st.sampled_from(YEARS))
    text = str(year)
    precision = draw(
        st.sampled_from(["year", "month", "day", "time"] if times else ["year", "month", "day"])
    )
    if precision == "year":
        return text
    text += f"-{draw(st.sampled_from([1, 3, 12])):02d}"
    if precision == "month":
        return text
    text += f"-{draw(st.sampled_from([1, 5, 31])):02d}"
    if precision == "day":
        return text
    hour = draw(st.sampled_from([0, 10, 23]))
    zone = draw(st.sampled_from(["Z", "+01:00", "-05:00"]))
    return f"{text}T{hour:02d}:15:00{zone}"


# -- resources ------------------------------------------------------------------------------------


@st.composite
def patient(draw: st.DrawFn, res_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "id": res_id}
    name: dict[str, Any] = {"given": [draw(st.sampled_from(GIVENS))]}
    if draw(st.integers(0, 4)):
        name["family"] = draw(st.sampled_from(FAMILIES))
    body["name"] = [name]
    if draw(st.integers(0, 3)):
        body["gender"] = draw(st.sampled_from(GENDERS))
    if draw(st.integers(0, 3)):
        body["birthDate"] = draw(dates(times=False))
    return body


@st.composite
def observation(draw: st.DrawFn, res_id: str, patients: list[str]) -> dict[str, Any]:
    code, system = draw(st.sampled_from(CODES))
    coding: dict[str, Any] = {"code": code}
    if draw(st.integers(0, 3)):
        coding["system"] = system
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": res_id,
        "status": "final",
        "code": {"coding": [coding]},
    }
    if patients and draw(st.integers(0, 4)):
        body["subject"] = {"reference": f"Patient/{draw(st.sampled_from(patients))}"}
    effective = draw(st.sampled_from(["dateTime", "period", "none"]))
    if effective == "dateTime":
        body["effectiveDateTime"] = draw(dates(times=True))
    elif effective == "period":
        body["effectivePeriod"] = {"start": draw(dates(times=True))}
    if draw(st.integers(0, 3)):
        unit = draw(st.sampled_from(UNITS))
        body["valueQuantity"] = {
            "value": draw(st.sampled_from([0, 1.5, 5, 70, 170.25])),
            "unit": unit,
            "system": UCUM,
            "code": unit,
        }
    return body


@dataclass
class Example:
    resources: list[dict[str, Any]]
    patient_ids: list[str]


@st.composite
def examples(draw: st.DrawFn) -> Example:
    n = next(_example)
    patient_ids = [f"e{n}-p{i}" for i in range(draw(st.integers(1, 4)))]
    resources = [draw(patient(pid)) for pid in patient_ids]
    for i in range(draw(st.integers(0, 6))):
        resources.append(draw(observation(f"e{n}-o{i}", patient_ids)))
    return Example(resources, patient_ids)


# -- searches -------------------------------------------------------------------------------------


@st.composite
def patient_search(draw: st.DrawFn, ex: Example) -> list[tuple[str, str]]:
    """One or two criteria (ANDed), then result parameters."""
    criteria = draw(st.lists(patient_criterion(ex), min_size=1, max_size=2))
    sorts = ["birthdate", "-birthdate", "gender", "-gender", "_id"]
    return [p for c in criteria for p in c] + draw(result_params(sorts))


@st.composite
def patient_criterion(draw: st.DrawFn, ex: Example) -> list[tuple[str, str]]:
    kind = draw(
        st.sampled_from(
            ["family", "exact", "contains", "name", "gender", "not", "birthdate", "missing", "id"]
        )
    )
    family = draw(st.sampled_from(FAMILIES))
    params: list[tuple[str, str]] = []
    if kind == "family":
        params.append(("family", family[: draw(st.integers(1, len(family)))]))
    elif kind == "exact":
        params.append(("family:exact", family))
    elif kind == "contains":
        start = draw(st.integers(0, len(family) - 1))
        params.append(("family:contains", family[start : start + draw(st.integers(1, 4))]))
    elif kind == "name":
        params.append(("name", draw(st.sampled_from(FAMILIES + GIVENS))))
    elif kind == "gender":
        params.append(("gender", ",".join(draw(st.lists(st.sampled_from(GENDERS), min_size=1)))))
    elif kind == "not":
        params.append(("gender:not", draw(st.sampled_from(GENDERS))))
    elif kind == "birthdate":
        prefix = draw(st.sampled_from(["", "eq", "lt", "ge", "sa", "eb"]))
        params.append(("birthdate", prefix + draw(dates(times=False))))
    elif kind == "missing":
        code = draw(st.sampled_from(["family", "birthdate", "gender"]))
        params.append((f"{code}:missing", draw(st.sampled_from(["true", "false"]))))
    else:
        params.append(
            ("_id", ",".join(draw(st.lists(st.sampled_from(ex.patient_ids), min_size=1))))
        )
    return params


@st.composite
def observation_search(draw: st.DrawFn, ex: Example) -> list[tuple[str, str]]:
    """One or two criteria (ANDed), then result parameters."""
    criteria = draw(st.lists(observation_criterion(ex), min_size=1, max_size=2))
    sorts = ["date", "-date", "code", "value-quantity", "-value-quantity", "subject", "_id"]
    return [p for c in criteria for p in c] + draw(result_params(sorts))


@st.composite
def observation_criterion(draw: st.DrawFn, ex: Example) -> list[tuple[str, str]]:
    kind = draw(
        st.sampled_from(["code", "date", "quantity", "subject", "patient", "chain", "missing"])
    )
    params: list[tuple[str, str]] = []
    if kind == "code":
        code, system = draw(st.sampled_from(CODES))
        form = draw(st.sampled_from(["system|code", "code", "|code"]))
        value = {"system|code": f"{system}|{code}", "code": code, "|code": f"|{code}"}[form]
        params.append(("code", value))
    elif kind == "date":
        prefix = draw(st.sampled_from(["", "eq", "lt", "ge", "sa", "eb"]))
        params.append(("date", prefix + draw(dates(times=True))))
    elif kind == "quantity":
        prefix = draw(st.sampled_from(["", "eq", "lt", "ge", "gt", "le"]))
        number = draw(st.sampled_from(["0", "1.5", "5", "70", "170.25", "100"]))
        unit = draw(st.sampled_from(UNITS))
        form = draw(st.sampled_from(["number", "system|unit", "||unit"]))
        value = {
            "number": number,
            "system|unit": f"{number}|{UCUM}|{unit}",
            "||unit": f"{number}||{unit}",
        }[form]
        params.append(("value-quantity", prefix + value))
    elif kind == "subject":
        params.append(("subject", f"Patient/{draw(st.sampled_from(ex.patient_ids))}"))
    elif kind == "patient":
        params.append(("patient", draw(st.sampled_from(ex.patient_ids))))
    elif kind == "chain":
        chained = draw(
            st.sampled_from(
                [
                    ("subject:Patient.family", st.sampled_from(FAMILIES)),
                    ("subject.gender", st.sampled_from(GENDERS)),
                    ("patient.birthdate", dates(times=False).map(lambda d: "ge" + d)),
                ]
            )
        )
        params.append((chained[0], draw(chained[1])))
    else:
        code = draw(st.sampled_from(["value-quantity", "subject", "date", "code"]))
        params.append((f"{code}:missing", draw(st.sampled_from(["true", "false"]))))
    return params


@st.composite
def result_params(draw: st.DrawFn, sorts: list[str]) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(sorts), min_size=1, max_size=2, unique=True))
        params.append(("_sort", ",".join(keys)))
    if draw(st.booleans()):
        params.append(("_count", str(draw(st.sampled_from([1, 3, 50])))))
    return params


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Example, list[tuple[str, list[tuple[str, str]]]]]:
    ex = draw(examples())
    searches = [("Patient", draw(patient_search(ex))) for _ in range(3)]
    searches += [("Observation", draw(observation_search(ex))) for _ in range(4)]
    return ex, searches


# -- the property ---------------------------------------------------------------------------------


def _store(client: TestClient, resources: list[dict[str, Any]]) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": body,
                "request": {"method": "PUT", "url": f"{body['resourceType']}/{body['id']}"},
            }
            for body in resources
        ],
    }
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text


def _answer(client: TestClient, res_type: str, params: list[tuple[str, str]]) -> Any:
    r = client.get(f"/fhir/{res_type}", params=params)
    if r.status_code != 200:
        return r.status_code
    bundle = r.json()
    found = [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    return r.status_code, bundle.get("total"), found


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_sqlite_and_postgresql_return_the_same_search_results(
    stores: Stores, scenario: tuple[Example, list[tuple[str, list[tuple[str, str]]]]]
) -> None:
    ex, searches = scenario
    _store(stores.sqlite, ex.resources)
    _store(stores.postgres, ex.resources)
    for res_type, params in searches:
        on_sqlite = _answer(stores.sqlite, res_type, params)
        on_postgres = _answer(stores.postgres, res_type, params)
        assert on_sqlite == on_postgres, (res_type, params)
