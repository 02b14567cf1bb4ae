"""Token searches without a system (``category=laboratory``), and PostgreSQL plans.

psycopg prepares a statement run 5 times on a connection, and PostgreSQL may then plan it once
for any values (a generic plan). For the lab results search that plan took the code for a rare
one and checked each of the patient's rows through ``ix_idx_token_value`` with the system open:
every row read every laboratory entry of the store (100-124 ms at 292k resources). Carnet's
PostgreSQL engine prepares nothing (carnet.db.engine), so every search is planned for its own
values. The values themselves match exactly, odd characters included, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, build_services, create_app
from carnet.fhir.search import parse
from carnet.settings import Settings
from tests.conftest import make_settings
from tests.spec.helpers import FHIR_JSON, observation, patient
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.postgres import ThrowawayPostgres

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _create(client: TestClient, body: dict[str, Any]) -> str:
    r = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _lab(patient_id: str, category: str, system: str | None = CATEGORY) -> dict[str, Any]:
    coding = {"code": category} if system is None else {"system": system, "code": category}
    return observation(patient_id, category=[{"coding": [coding]}])


def _ids(client: TestClient, params: dict[str, str]) -> set[str]:
    r = client.get("/fhir/Observation", params=params)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", [])}


def test_token_values_with_odd_characters_match_exactly(client: TestClient) -> None:
    pid = _create(client, patient())
    odd = "lab'o%r\\a:t"  # a quote, a percent sign, a backslash and a colon in the SQL text
    lab = _create(client, _lab(pid, "laboratory"))
    weird = _create(client, _lab(pid, odd))
    bare = _create(client, _lab(pid, "laboratory", system=None))
    _create(client, _lab(pid, "vital-signs"))
    both = {lab, bare}
    assert _ids(client, {"patient": pid, "category": "laboratory"}) == both
    assert _ids(client, {"category": "laboratory", "_sort": "-date", "_count": "5"}) == both
    assert _ids(client, {"patient": pid, "category": odd.replace("\\", "\\\\")}) == {weird}
    assert _ids(client, {"category": "lab'o%"}) == set()
    assert _ids(client, {"patient": pid, "category": f"{CATEGORY}|"}) == {
        lab,
        weird,
        *_ids(client, {"category": "vital-signs"}),
    }
    assert _ids(client, {"patient": pid, "category": "|laboratory"}) == {bare}
    assert _ids(client, {"patient": pid, "category:not": "laboratory"}) == (
        _ids(client, {"patient": pid}) - both
    )


# -- PostgreSQL: no prepared statement, so no generic plan -------------------------------------


@pytest.fixture
def pg_settings(postgres: ThrowawayPostgres, tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", postgres.create_database("token_plans"))


@pytest.fixture
def pg_services(pg_settings: Settings) -> Iterator[Services]:
    built = build_services(pg_settings)
    yield built
    built.close()


def _first_page(services: Services, params: list[tuple[str, str]]) -> Any:
    definitions = services.fhir.definitions
    req = parse("Observation", params, definitions, default_count=20, max_count=1000, strict=True)
    ids, _ = services.fhir.compiler.compile(req)
    return ids.offset(0).limit(2000)


def test_searches_are_never_run_from_a_prepared_generic_plan(
    pg_settings: Settings, pg_services: Services
) -> None:
    app = create_app(pg_settings, pg_services)
    headers = bearer(pg_services, TEST_OPERATOR)
    with TestClient(app, base_url="http://127.0.0.1", headers=headers) as c:
        pid = _create(c, patient())
        for i in range(12):
            _create(c, _lab(pid, "laboratory" if i % 3 else "vital-signs"))
    statement = _first_page(
        pg_services,
        [("patient", pid), ("category", "laboratory"), ("_sort", "-date"), ("_count", "5")],
    )
    # The app's engine runs the search many times on one connection and never prepares it.
    with pg_services.engine.connect() as conn:
        for _ in range(12):
            assert len(conn.execute(statement).all()) == 8
        prepared = conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements")
        assert prepared.scalar_one() == 0
