"""Search totals and counts: a caller who sees everything gets a count read from the index alone
(carnet.fhir.query), a first page takes its total from the ids it read (carnet.fhir.service);
both must equal what the full query says, after updates and deletions, and a restricted caller's
count stays filtered. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import and_, exists, select

from carnet.app import Services, create_app
from carnet.caller import Kind, Principal, RequestContext
from carnet.fhir import searching as fhir_searching
from carnet.fhir.models import INDEX_TABLES, resource
from carnet.policy.enforce import note_care
from tests.spec.helpers import FHIR_JSON, observation, patient
from tests.support.auth import bearer
from tests.support.caller import AS_LOCAL_OPERATOR

LOINC = "http://loinc.org"
GP = "10000000001"


def _create(client: TestClient, body: dict[str, Any]) -> str:
    r = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _total(client: TestClient, res_type: str, params: dict[str, str]) -> int:
    r = client.get(f"/fhir/{res_type}", params=params)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def _count(client: TestClient, res_type: str, params: dict[str, str]) -> int:
    return _total(client, res_type, {**params, "_summary": "count"})


def _orphan_index_rows(services: Services) -> int:
    """Index rows whose owner has no current, undeleted version (the count relies on none)."""
    found = 0
    with services.engine.connect() as conn:
        for table in INDEX_TABLES.values():
            owner = exists().where(
                and_(
                    resource.c.res_type == table.c.res_type,
                    resource.c.res_id == table.c.res_id,
                    resource.c.current,
                    resource.c.deleted.is_(False),
                )
            )
            found += len(conn.execute(select(table.c.res_id).where(~owner)).all())
    return found


def test_counts_follow_updates_and_deletes(client: TestClient, services: Services) -> None:
    pid = _create(client, patient("Compte"))
    other = _create(client, patient("Autre"))
    ids = [_create(client, observation(pid, code="29463-7")) for _ in range(3)]
    _create(client, observation(other, code="29463-7"))
    moved = observation(pid, code="8302-2")
    r = client.put(f"/fhir/Observation/{ids[0]}", json={**moved, "id": ids[0]}, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    assert client.delete(f"/fhir/Observation/{ids[1]}").status_code == 204
    weight = {"code": f"{LOINC}|29463-7"}
    assert _count(client, "Observation", weight) == 2  # ids[2] and the other patient's
    assert _count(client, "Observation", {"code": f"{LOINC}|8302-2"}) == 1
    assert _count(client, "Observation", {"code": "29463-7"}) == 2
    assert _count(client, "Observation", {"subject": f"Patient/{pid}"}) == 2
    assert _count(client, "Observation", {"subject:Patient.family": "Compte"}) == 2
    assert _count(client, "Observation", {"value-quantity:missing": "false"}) == 3
    assert _count(client, "Observation", {**weight, "subject": f"Patient/{pid}"}) == 1
    assert _total(client, "Observation", weight) == 2
    assert _total(client, "Observation", {**weight, "_count": "1"}) == 2
    assert _orphan_index_rows(services) == 0


def test_a_long_result_still_counts_every_match(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the ids kept for paging, the total comes from the COUNT query."""
    monkeypatch.setattr(fhir_searching, "SNAPSHOT_MAX", 3)
    for i in range(5):
        _create(client, patient("Longue", given=f"P{i}"))
    r = client.get("/fhir/Patient", params={"family": "Longue", "_count": "2"})
    assert r.json()["total"] == 5
    monkeypatch.setattr(fhir_searching, "SNAPSHOT_MAX", 6)
    r = client.get("/fhir/Patient", params={"family": "Longue", "_count": "2"})
    assert r.json()["total"] == 5


def test_a_restricted_callers_count_stays_filtered(services: Services) -> None:
    s = services
    a = s.fhir.create("Patient", patient("Masque"), ctx=AS_LOCAL_OPERATOR).stored.res_id
    b = s.fhir.create("Patient", patient("Voisin"), ctx=AS_LOCAL_OPERATOR).stored.res_id
    shown = s.fhir.create(
        "Observation", observation(a, code="29463-7"), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    masked = s.fhir.create(
        "Observation", observation(a, code="29463-7"), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    s.fhir.create("Observation", observation(b, code="29463-7"), ctx=AS_LOCAL_OPERATOR)
    with s.engine.begin() as conn:
        note_care(conn, a, GP, "declared")
    as_a = RequestContext(actor="a", principal=Principal(Kind.PERSON, "acct-a", patient_id=a))
    s.controls.set_mask(as_a, f"Observation/{masked}", "MASQUE_PS", on=True)
    callers = {
        "gp": Principal(Kind.PROFESSIONAL, "pro-gp", rpps=GP, profession="physician"),
        "a": Principal(Kind.PERSON, "acct-a", patient_id=a),
        "b": Principal(Kind.PERSON, "acct-b", patient_id=b),
        "operator": Principal(Kind.OPERATOR, "operator:t", scopes=frozenset({"system/*.*"})),
    }
    expected = {"gp": 1, "a": 2, "b": 1, "operator": 3}
    weight = {"code": f"{LOINC}|29463-7"}
    with TestClient(create_app(s.settings, s), base_url="http://127.0.0.1") as client:
        for name, principal in callers.items():
            client.headers.update(bearer(s, principal))
            assert _count(client, "Observation", weight) == expected[name], name
            assert _total(client, "Observation", weight) == expected[name], name
        client.headers.update(bearer(s, callers["gp"]))
        found = client.get("/fhir/Observation", params=weight).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [shown]
