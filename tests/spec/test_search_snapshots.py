"""Search snapshots (the stored ids behind ``next`` links) are bound to the caller, the type and
the query that made them, and every page they serve goes through the caller's visibility again.
An unknown, foreign or expired snapshot answers exactly alike, and each refusal is audited.
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from carnet.app import Services, create_app
from carnet.caller import Kind, Principal, RequestContext
from carnet.fhir.dates import sortable, utc_now
from carnet.fhir.models import search_snapshot, search_snapshot_binding
from carnet.policy.enforce import note_care
from tests.spec.helpers import observation, patient
from tests.support.audit_log import logged_events
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.caller import AS_LOCAL_OPERATOR

GP = "10000000001"
NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"


@dataclass
class World:
    services: Services
    client: TestClient
    a: str
    b: str
    a_obs: list[str]
    b_obs: list[str]
    callers: dict[str, dict[str, str]]
    people: dict[str, Principal]


@pytest.fixture
def world(services: Services) -> Iterator[World]:
    s = services
    a = s.fhir.create(
        "Patient", patient("Alpha", identifier=_nir("180057500100762")), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    b = s.fhir.create(
        "Patient", patient("Beta", identifier=_nir("275037500200897")), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    a_obs = [
        s.fhir.create("Observation", observation(a), ctx=AS_LOCAL_OPERATOR).stored.res_id
        for _ in range(3)
    ]
    b_obs = [
        s.fhir.create("Observation", observation(b), ctx=AS_LOCAL_OPERATOR).stored.res_id
        for _ in range(3)
    ]
    with s.engine.begin() as conn:
        note_care(conn, a, GP, "declared")
        note_care(conn, b, GP, "declared")
    people = {
        "operator": TEST_OPERATOR,
        "a": Principal(Kind.PERSON, "acct-a", patient_id=a),
        "b": Principal(Kind.PERSON, "acct-b", patient_id=b),
        "gp": Principal(Kind.PROFESSIONAL, "pro-gp", rpps=GP, profession="physician"),
        "other_gp": Principal(
            Kind.PROFESSIONAL, "pro-other", rpps="10000000002", profession="physician"
        ),
    }
    callers = {name: bearer(s, p) for name, p in people.items()}
    with TestClient(create_app(s.settings, s), base_url="http://127.0.0.1") as client:
        yield World(s, client, a, b, a_obs, b_obs, callers, people)


def _nir(value: str) -> list[dict[str, Any]]:
    return [{"system": NIR_SYSTEM, "value": value}]


def _first_page(world: World, caller: str, url: str) -> dict[str, Any]:
    r = world.client.get(url, headers=world.callers[caller])
    assert r.status_code == 200, r.text
    return dict(r.json())


def _next(bundle: dict[str, Any]) -> str:
    url = next(x["url"] for x in bundle["link"] if x["relation"] == "next")
    return str(url).replace("http://127.0.0.1", "")


def _snapshot_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["_snapshot"]


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _all_pages(world: World, caller: str, url: str) -> list[str]:
    seen: list[str] = []
    while True:
        bundle = _first_page(world, caller, url)
        seen.extend(_ids(bundle))
        if not any(x["relation"] == "next" for x in bundle["link"]):
            return seen
        url = _next(bundle)


def _unknown_answer(world: World, caller: str, path: str) -> tuple[int, bytes]:
    r = world.client.get(
        path,
        params={"_snapshot": "00000000-0000-4000-8000-000000000000", "_offset": "1"},
        headers=world.callers[caller],
    )
    return r.status_code, r.content


def _refusals(world: World, before: int, actor: str) -> list[str]:
    return [
        str(e.get("rule"))
        for e in logged_events(world.services)[before:]
        if e["actor"] == actor and e["outcome"] == 410
    ]


def test_snapshot_replayed_by_another_caller_answers_like_missing(world: World) -> None:
    first = _first_page(world, "operator", "/fhir/Patient?_count=1&_sort=_id")
    replay = _next(first)
    unknown = _unknown_answer(world, "gp", "/fhir/Patient")
    before = len(logged_events(world.services))
    for caller in ("gp", "b", "other_gp"):
        r = world.client.get(replay, headers=world.callers[caller])
        assert (r.status_code, r.content) == unknown, caller
        assert b"Beta" not in r.content and b"275037500200897" not in r.content
    rules = _refusals(world, before, "pro-gp") + _refusals(world, before, "acct-b")
    assert rules == ["search-snapshot-not-bound", "search-snapshot-not-bound"]
    # the owner still pages through it
    assert world.client.get(replay, headers=world.callers["operator"]).status_code == 200


def test_snapshot_is_bound_to_its_type(world: World) -> None:
    first = _first_page(world, "gp", "/fhir/Patient?_count=1&_sort=_id")
    swapped = _next(first).replace("/fhir/Patient?", "/fhir/Observation?")
    r = world.client.get(swapped, headers=world.callers["gp"])
    assert (r.status_code, r.content) == _unknown_answer(world, "gp", "/fhir/Observation")


def test_snapshot_is_bound_to_its_query(world: World) -> None:
    url = f"/fhir/Observation?_count=1&_sort=_id&subject=Patient/{world.a}"
    replay = _next(_first_page(world, "gp", url))
    swapped = replay.replace(world.a, world.b)
    assert swapped != replay
    r = world.client.get(swapped, headers=world.callers["gp"])
    assert (r.status_code, r.content) == _unknown_answer(world, "gp", "/fhir/Observation")
    # the same query, other page size: still the same search
    resized = replay.replace("_count=1", "_count=2")
    assert world.client.get(resized, headers=world.callers["gp"]).status_code == 200


def test_expired_snapshot_answers_like_missing(world: World) -> None:
    replay = _next(_first_page(world, "gp", "/fhir/Observation?_count=2&_sort=_id"))
    long_ago = sortable(utc_now() - timedelta(hours=2))
    with world.services.engine.begin() as conn:
        for table in (search_snapshot, search_snapshot_binding):
            conn.execute(
                update(table)
                .where(table.c.snapshot_id == _snapshot_of(replay))
                .values(created_at=long_ago)
            )
    before = len(logged_events(world.services))
    r = world.client.get(replay, headers=world.callers["gp"])
    assert (r.status_code, r.content) == _unknown_answer(world, "gp", "/fhir/Observation")
    assert _refusals(world, before, "pro-gp")[0] == "search-snapshot-expired"


def test_snapshot_pages_reapply_visibility_after_a_block(world: World) -> None:
    url = "/fhir/Observation?_count=1&_sort=-_id"  # b's items first, a's on the last pages
    first = _first_page(world, "gp", url)
    assert first["total"] == 6
    assert _ids(first) == [max(world.b_obs)]
    as_b = RequestContext(actor="b", principal=world.people["b"])
    world.services.controls.set_block(as_b, world.b, GP, on=True)
    later: list[str] = []
    bundle = first
    while any(x["relation"] == "next" for x in bundle["link"]):
        bundle = _first_page(world, "gp", _next(bundle))
        later.extend(_ids(bundle))
    assert not set(later) & set(world.b_obs)
    assert sorted(later) == sorted(world.a_obs)  # the pages emptied by the block lead on


def test_snapshot_pages_reapply_visibility_after_a_mask(world: World) -> None:
    url = "/fhir/Observation?_count=2&_sort=_id"
    first = _first_page(world, "gp", url)
    hidden = sorted(world.a_obs + world.b_obs)[-1]  # on the last page
    owner = "a" if hidden in world.a_obs else "b"
    as_owner = RequestContext(actor=owner, principal=world.people[owner])
    world.services.controls.set_mask(as_owner, f"Observation/{hidden}", "MASQUE_PS", on=True)
    seen = _ids(first) + _all_pages(world, "gp", _next(first))
    assert hidden not in seen
    assert len(seen) == 5
    # the operator's view is unchanged
    assert len(_all_pages(world, "operator", url)) == 6
