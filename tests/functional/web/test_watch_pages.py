"""The security officer's queue in the portal: an operator holding the role reads the queue and
an alert, and closes it (a bad outcome re-renders the form, 400, nothing changed); a plain
operator, a professional and a person meet the 403 page, and each refusal is audited; no name
reaches the page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from carnet.app import Services, create_app
from carnet.audit.models import audit_event
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.caller import RequestContext
from carnet.watch.models import watch_alert
from carnet.watch.wiring import build
from carnet.web.security import CSRF_FIELD
from tests.support.module_services import module_services_fixture
from tests.support.watch_world import RPPS, STREET, SURNAME, build_watch_world

BASE = "http://127.0.0.1"
PASSWORD = "a long operator passphrase 42"
CLI = RequestContext.local_operator(actor="operator:cli", source="cli", purpose="security")
shared = module_services_fixture()


@dataclass
class Portal:
    services: Services
    app: FastAPI
    accounts: dict[str, str]


@pytest.fixture(scope="module")
def portal(shared: Services) -> Iterator[Portal]:
    world = build_watch_world(shared)
    accounts = {
        "officer": shared.accounts.create_operator("officer", PASSWORD),
        "operator": shared.accounts.create_operator("plain", PASSWORD),
        "pro": world.pro,
        "person": shared.accounts.create_person("p@example.org", PASSWORD, world.relative),
    }
    watch = build(shared.settings, shared.engine, shared.fhir, shared.audit, shared.crypto.blind)
    watch.grant(CLI, accounts["officer"])
    watch.scan(CLI)
    yield Portal(shared, create_app(shared.settings, shared), accounts)


def _client(portal: Portal, who: str | None) -> tuple[TestClient, str]:
    client = TestClient(portal.app, base_url=BASE)
    if who is None:
        return client, ""
    cookie, csrf = portal.services.sessions.open(portal.accounts[who], second_factor=True)
    client.cookies.set(SESSION_COOKIE, cookie)
    client.cookies.set(CSRF_COOKIE, csrf)
    return client, csrf


def _refusals(services: Services) -> int:
    services.audit.flush()
    with services.engine.connect() as conn:
        bodies = conn.execute(select(audit_event.c.body)).scalars()
        return sum(1 for b in bodies if b'"rule":"watch-officer-only"' in bytes(b))


def test_only_a_security_officer_reaches_the_queue_and_refusals_are_audited(
    portal: Portal,
) -> None:
    anonymous, _ = _client(portal, None)
    answer = anonymous.get("/securite/alertes", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/connexion")
    before = _refusals(portal.services)
    for who in ("operator", "pro", "person"):
        client, csrf = _client(portal, who)
        assert client.get("/securite/alertes").status_code == 403
        assert client.get("/securite/alertes/any").status_code == 403
        posted = client.post(
            "/securite/alertes/any", data={CSRF_FIELD: csrf, "outcome": "confirmed"}
        )
        assert posted.status_code == 403
    assert _refusals(portal.services) == before + 9


def test_the_officer_reads_an_alert_and_closes_it(portal: Portal) -> None:
    client, csrf = _client(portal, "officer")
    queue = client.get("/securite/alertes")
    assert queue.status_code == 200
    assert "même nom et même adresse que le professionnel" in queue.text
    for text in (SURNAME, STREET, RPPS):
        assert text.casefold() not in queue.text.casefold()
    found = re.search(r'href="/securite/alertes/([0-9a-f-]{36})"', queue.text)
    assert found is not None
    path = f"/securite/alertes/{found.group(1)}"
    page = client.get(path)
    assert page.status_code == 200 and 'name="outcome"' in page.text
    assert client.get("/securite/alertes/no-such-alert").status_code == 404

    bad = client.post(path, data={CSRF_FIELD: csrf, "outcome": "whatever"})
    assert bad.status_code == 400 and "Choisissez l" in bad.text
    assert 'name="outcome"' in client.get(path).text  # still open

    closed = client.post(
        path, data={CSRF_FIELD: csrf, "outcome": "legitimate"}, follow_redirects=False
    )
    assert closed.status_code == 303 and closed.headers["location"] == "/securite/alertes"
    assert "Aucune alerte ouverte." in client.get("/securite/alertes").text
    assert 'name="outcome"' not in client.get(path).text


def test_closing_an_unknown_alert_with_a_bad_outcome_answers_the_missing_page(
    portal: Portal,
) -> None:
    client, csrf = _client(portal, "officer")
    forged = client.post("/securite/alertes/no-such-alert", data={CSRF_FIELD: csrf, "outcome": "x"})
    assert forged.status_code == 404  # not a server error


def test_an_officer_form_without_its_own_sessions_csrf_token_changes_nothing(
    portal: Portal,
) -> None:
    alert_id = _open_alert(portal, "acct-csrf-probe")
    client, _ = _client(portal, "officer")
    _, someone_elses = _client(portal, "operator")
    path = f"/securite/alertes/{alert_id}"
    for form in (
        {"outcome": "false-positive"},
        {CSRF_FIELD: someone_elses, "outcome": "duplicate"},
    ):
        assert client.post(path, data=form).status_code == 403
    assert 'name="outcome"' in client.get(path).text  # still open


def _open_alert(portal: Portal, actor: str) -> str:
    """An open alert of this test's own (the module's world raises one, another test closes it)."""
    alert_id = str(uuid.uuid4())
    row = {
        "alert_id": alert_id, "actor": actor, "day": "2026-01-05", "score": 0.9,
        "reasons": '["unusual"]', "patients": "[]", "events": "[]", "unexplained": 1,
        "status": "open", "created_at": "2026-01-05T10:00:00Z",
    }  # fmt: skip
    with portal.services.engine.begin() as conn:
        conn.execute(insert(watch_alert).values(**row))
    return alert_id
