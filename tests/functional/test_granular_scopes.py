"""SMART v2 granular scopes (``patient/Observation.rs?category=laboratory``) are honoured in the
query on SQLite and PostgreSQL: searches, counts and _include return only the items the scope's
query matches, a read of another item answers as for a hidden one, and writes stay within it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.authn.models import access_grant
from carnet.caller import Kind, Principal
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.caller import AS_LOCAL_OPERATOR

# Both backends: a security suite: scope filters compile to the store's search SQL.
pytestmark = pytest.mark.both_backends

FHIR = {"Content-Type": "application/fhir+json"}
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
GP = "10000000201"


@dataclass
class World:
    services: Services
    client: TestClient
    a: str
    lab: str  # a's laboratory result
    vital: str  # a's vital sign
    callers: dict[str, dict[str, str]]

    def get(self, caller: str, path: str, **params: str) -> Any:
        return self.client.get(path, params=params, headers=self.callers[caller])

    def ids(self, caller: str, path: str, **params: str) -> set[str]:
        found = self.get(caller, path, **params)
        assert found.status_code == 200, found.text
        return {e["resource"]["id"] for e in found.json().get("entry", [])}


def _obs(patient: str, category: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }


def _app(patient: str, *scopes: str) -> Principal:
    return Principal(
        Kind.APP, "acct-a", patient_id=patient, client_id="lab-app", scopes=frozenset(scopes)
    )


@pytest.fixture
def world(services: Services) -> Iterator[World]:
    s = services
    a = s.fhir.create(
        "Patient", {"resourceType": "Patient", "birthDate": "1980-01-01"}, ctx=AS_LOCAL_OPERATOR
    )
    pid = a.stored.res_id
    lab = s.fhir.create("Observation", _obs(pid, "laboratory"), ctx=AS_LOCAL_OPERATOR).stored.res_id
    vital = s.fhir.create(
        "Observation", _obs(pid, "vital-signs"), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    with s.engine.begin() as conn:
        conn.execute(
            access_grant.insert().values(
                patient_id=pid,
                client_id="lab-app",
                scopes="patient/Observation.rs?category=laboratory",
                granted_at="2026-01-01T00:00:00.000000Z",
                revoked=False,
            )
        )
    people = {
        "lab_app": _app(pid, "patient/Patient.rs", "patient/Observation.rs?category=laboratory"),
        "two_app": _app(
            pid,
            "patient/Observation.rs?category=laboratory",
            "patient/Observation.rs?category=vital-signs",
        ),
        "whole_app": _app(
            pid, "patient/Observation.rs", "patient/Observation.rs?category=laboratory"
        ),
        "vital_writer": _app(
            pid, "patient/Observation.crus?category=vital-signs", "patient/Observation.rs"
        ),
        "bad_query_app": _app(pid, "patient/Observation.rs?no-such-param=x"),
        "gp_app": Principal(
            Kind.PROFESSIONAL,
            "pro-gp",
            rpps=GP,
            profession="physician",
            client_id="lab-app",
            scopes=frozenset({"user/Observation.rs?category=laboratory"}),
        ),
        "operator": TEST_OPERATOR,
    }
    callers = {name: bearer(s, p) for name, p in people.items()}
    callers["a"] = bearer(s, Principal(Kind.PERSON, "acct-a", patient_id=pid))
    with TestClient(create_app(s.settings, s), base_url="http://127.0.0.1") as client:
        world = World(s, client, pid, lab, vital, callers)
        assert world.client.post("/access/care", json={"rpps": GP}, headers=callers["a"]).is_success
        yield world


def test_granular_scope_limits_search_to_its_category(world: World) -> None:
    assert world.ids("lab_app", "/fhir/Observation") == {world.lab}
    assert world.ids("lab_app", "/fhir/Observation", patient=world.a) == {world.lab}
    assert world.ids("lab_app", "/fhir/Observation", category="vital-signs") == set()
    count = world.get("lab_app", "/fhir/Observation", _summary="count").json()
    assert count["total"] == 1  # no count betrays an item outside the scope
    # _revinclude brings only what the scope covers
    found = world.ids("lab_app", "/fhir/Patient", _revinclude="Observation:subject")
    assert found == {world.a, world.lab}
    # $everything and a professional's app the same way
    everything = world.get("lab_app", f"/fhir/Patient/{world.a}/$everything").json()
    assert world.vital not in str(everything)
    assert world.ids("gp_app", "/fhir/Observation") == {world.lab}


def test_granular_scopes_add_up_and_a_whole_scope_covers_all(world: World) -> None:
    assert world.ids("two_app", "/fhir/Observation") == {world.lab, world.vital}
    assert world.ids("whole_app", "/fhir/Observation") == {world.lab, world.vital}


def test_granular_scope_read_outside_it_answers_as_for_a_hidden_item(world: World) -> None:
    assert world.get("lab_app", f"/fhir/Observation/{world.lab}").status_code == 200
    outside = world.get("lab_app", f"/fhir/Observation/{world.vital}")
    missing = world.get("lab_app", "/fhir/Observation/no-such-id")
    assert outside.status_code == missing.status_code == 404
    assert outside.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
    assert world.get("lab_app", f"/fhir/Observation/{world.vital}/_history/1").status_code == 404
    assert world.get("gp_app", f"/fhir/Observation/{world.vital}").status_code == 404


def test_granular_scope_query_carnet_cannot_evaluate_covers_nothing(world: World) -> None:
    assert world.ids("bad_query_app", "/fhir/Observation") == set()
    assert world.get("bad_query_app", f"/fhir/Observation/{world.lab}").status_code == 404


def test_granular_scope_limits_writes_to_its_category(world: World) -> None:
    def post(body: dict[str, Any]) -> Any:
        return world.client.post(
            "/fhir/Observation", json=body, headers={**FHIR, **world.callers["vital_writer"]}
        )

    before = world.get("operator", "/fhir/Observation", _summary="count").json()["total"]
    assert post(_obs(world.a, "vital-signs")).status_code == 201
    refused = post(_obs(world.a, "laboratory"))
    assert refused.status_code == 403, refused.text
    after = world.get("operator", "/fhir/Observation", _summary="count").json()["total"]
    assert after == before + 1  # the refused create wrote nothing
    # nor may an item in the scope be moved out of it by an update
    mine = post(_obs(world.a, "vital-signs")).json()
    moved = dict(mine, category=[{"coding": [{"system": CATEGORY, "code": "laboratory"}]}])
    r = world.client.put(
        f"/fhir/Observation/{mine['id']}",
        json=moved,
        headers={**FHIR, **world.callers["vital_writer"]},
    )
    assert r.status_code == 403, r.text
    kept = world.get("operator", f"/fhir/Observation/{mine['id']}").json()
    assert kept["category"][0]["coding"][0]["code"] == "vital-signs"


def test_granular_scope_is_not_escaped_through_an_older_version(world: World) -> None:
    """A scope covers what the item is now: its versions from before it entered the scope (social
    history then, laboratory now) answer as a hidden item, in vread and in history."""
    s = world.services
    item = s.fhir.create(
        "Observation", _obs(world.a, "social-history"), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    s.fhir.update(
        "Observation", item, dict(_obs(world.a, "laboratory"), id=item), ctx=AS_LOCAL_OPERATOR
    )
    path = f"/fhir/Observation/{item}"
    assert world.get("lab_app", path).status_code == 200
    assert world.get("lab_app", f"{path}/_history/2").status_code == 200
    old = world.get("lab_app", f"{path}/_history/1")
    assert old.status_code == 404, old.text
    assert old.json()["resourceType"] == "OperationOutcome"
    assert world.get("a", f"{path}/_history/1").status_code == 200  # the person sees it all
    for history in (f"{path}/_history", "/fhir/Observation/_history"):
        found = world.get("lab_app", history)
        assert found.status_code == 200, found.text
        versions = {
            (e["resource"]["id"], e["resource"]["meta"]["versionId"])
            for e in found.json().get("entry", [])
            if "resource" in e
        }
        assert (item, "1") not in versions
        assert (item, "2") in versions
