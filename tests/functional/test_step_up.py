"""Step-up for the sensitive controls: closing one's space, objecting to it, lifting a block and
lifting the opposition to emergency access need the password and a new second-factor code again.
Without them (or with wrong ones, or someone else's) nothing changes and the refusal is audited.
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.audit.models import audit_event
from carnet.authn.service import AccountService
from carnet.caller import Kind, Principal
from carnet.record.register import read_register
from tests.support.auth import bearer
from tests.support.authn import PASSWORD, Clock, account_service, login_verifier, totp_code
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.unit.record.helpers import family_csv

GP = "10000000011"


@dataclass
class Person:
    account_id: str
    patient_id: str
    uri: str
    headers: dict[str, str]


@dataclass
class World:
    services: Services
    client: TestClient
    clock: Clock
    accounts: AccountService
    claire: Person
    paul: Person

    def proof(self, who: Person, *, password: str = PASSWORD, code: str | None = None) -> Any:
        """A step-up with a code of a new time step (each code is accepted once)."""
        self.clock.advance(seconds=30)
        return {"stepUp": {"password": password, "code": code or totp_code(who.uri, self.clock)}}


@pytest.fixture
def world(services: Services, tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    accounts = account_service(services, clock)
    report = services.record.provision(
        read_register(family_csv(tmp_path / "r.csv"), today=date.today()), ctx=AS_LOCAL_OPERATOR
    )
    people = []
    for n, patient_id in enumerate((report.patients[2], report.patients[4])):
        account_id = accounts.create_person(f"person{n}@exemple.fr", PASSWORD, patient_id)
        uri = accounts.enroll_totp(account_id)
        principal = Principal(Kind.PERSON, account_id, patient_id=patient_id)
        people.append(Person(account_id, patient_id, uri, bearer(services, principal)))
    # The accounts and their login checks on the test's clock, handed to the routes as the app's.
    wired = replace(services, accounts=accounts, login=login_verifier(services, accounts))
    app = create_app(services.settings, wired)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield World(services, client, clock, accounts, people[0], people[1])


def _refusals(services: Services, action: str) -> list[tuple[int, str]]:
    bodies = []
    with services.engine.connect() as conn:
        for row in conn.execute(audit_event.select().order_by(audit_event.c.seq)):
            bodies.append(orjson.loads(row.body))
    return [
        (e["outcome"], e["actor"])
        for e in bodies
        if e["action"] == action and e["rule"] == "step-up"
    ]


def _controls(w: World, who: Person) -> dict[str, Any]:
    r = w.client.get("/access/controls", headers=who.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _state(w: World, who: Person) -> str:
    return str(w.client.get("/record/space", headers=who.headers).json()["state"])


def _wrong_code(w: World, who: Person) -> str:
    right = totp_code(who.uri, w.clock)
    return f"{(int(right) + 500000) % 1000000:06d}"


def _refused_three_ways(w: World, send: Any, action: str, who: Person) -> None:
    """No step-up: 401; a wrong password: 403; someone else's password and code: 403. Each
    audited under the control's action."""
    missing = send(None)
    assert missing.status_code == 401, missing.text
    assert missing.json()["error"] == "step_up_required"
    assert "password" in missing.json()["error_description"]
    wrong = send(w.proof(who, password="not my password at all"))
    assert wrong.status_code == 403 and wrong.json()["error"] == "step_up_failed"
    other = w.paul if who is w.claire else w.claire
    borrowed = send(w.proof(other))  # another person's factors prove nothing for this caller
    assert borrowed.status_code == 403
    bad_code = send(w.proof(who, code=_wrong_code(w, who)))
    assert bad_code.status_code == 403
    assert _refusals(w.services, action) == [(s, who.account_id) for s in (401, 403, 403, 403)]


def test_lifting_a_block_needs_a_step_up(world: World) -> None:
    w, claire = world, world.claire
    assert (
        w.client.post("/access/blocks", json={"rpps": GP}, headers=claire.headers).status_code
        == 200
    )

    def send(body: Any) -> Any:
        return w.client.request("DELETE", f"/access/blocks/{GP}", json=body, headers=claire.headers)

    _refused_three_ways(w, send, "unblock", claire)
    assert _controls(w, claire)["blocked"] == [GP]  # nothing changed
    assert send(w.proof(claire)).status_code == 200
    assert _controls(w, claire)["blocked"] == []


def test_lifting_the_emergency_opposition_needs_a_step_up(world: World) -> None:
    w, claire = world, world.claire
    # Setting the opposition protects the record: no step-up asked.
    r = w.client.put(
        "/access/preferences", json={"emergencyOpposition": True}, headers=claire.headers
    )
    assert r.status_code == 200

    def send(body: Any) -> Any:
        return w.client.put(
            "/access/preferences",
            json={"emergencyOpposition": False, **(body or {})},
            headers=claire.headers,
        )

    _refused_three_ways(w, send, "preferences", claire)
    assert _controls(w, claire)["emergencyOpposition"] is True  # nothing changed
    assert send(w.proof(claire)).status_code == 200
    assert _controls(w, claire)["emergencyOpposition"] is False


def test_objecting_to_ones_space_needs_a_step_up(world: World) -> None:
    w, paul = world, world.paul
    before = _state(w, paul)

    def send(body: Any) -> Any:
        return w.client.post("/record/objection", json=body, headers=paul.headers)

    _refused_three_ways(w, send, "object", paul)
    assert _state(w, paul) == before
    done = send(w.proof(paul))
    assert done.status_code == 200 and done.json()["state"] != before


def test_closing_ones_space_needs_a_step_up(world: World) -> None:
    w, paul = world, world.paul
    before = _state(w, paul)

    def send(body: Any) -> Any:
        return w.client.post("/record/closure", json=body, headers=paul.headers)

    _refused_three_ways(w, send, "close", paul)
    assert _state(w, paul) == before
    done = send(w.proof(paul))
    assert done.status_code == 200 and done.json()["state"] == "closed"


def test_a_step_up_code_is_accepted_once(world: World) -> None:
    w, paul = world, world.paul
    proof = w.proof(paul)
    w.client.post("/access/blocks", json={"rpps": GP}, headers=paul.headers)
    assert (
        w.client.request(
            "DELETE", f"/access/blocks/{GP}", json=proof, headers=paul.headers
        ).status_code
        == 200
    )
    w.client.post("/access/blocks", json={"rpps": GP}, headers=paul.headers)
    replayed = w.client.request("DELETE", f"/access/blocks/{GP}", json=proof, headers=paul.headers)
    assert replayed.status_code == 403
    assert _controls(w, paul)["blocked"] == [GP]


def test_step_up_guessing_is_throttled_like_logins(world: World) -> None:
    w, paul = world, world.paul
    w.client.post("/access/blocks", json={"rpps": GP}, headers=paul.headers)
    statuses = []
    for _ in range(w.services.settings.login_max_failures + 1):
        r = w.client.request(
            "DELETE",
            f"/access/blocks/{GP}",
            json={"stepUp": {"password": "guessing guessing", "code": "123456"}},
            headers=paul.headers,
        )
        statuses.append(r.status_code)
    assert statuses[-1] == 429 and "retry-after" in r.headers
    assert statuses[:-1] == [403] * w.services.settings.login_max_failures
    assert _controls(w, paul)["blocked"] == [GP]
