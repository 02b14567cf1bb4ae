"""The security officer's queue in the portal: an operator holding the role reads the queue and
an alert, and closes it (a bad outcome re-renders the form, 400, nothing changed); a plain
operator, a professional and a person meet the 403 page, and each refusal is audited; no name
reaches the page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from carnet.app import Services, create_app
from carnet.audit.models import audit_event
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.caller import RequestContext
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
