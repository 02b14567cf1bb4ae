"""The public register's page: open without sign-in, in the portal's layout, French first and
English on request, listing organisations (never persons) and the three-month clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.caller import RequestContext
from carnet.hub.application import Application
from tests.support.hub import RESEARCHER_A, application, grant_roles


@pytest.fixture
def portal(sqlite_services: Services) -> Iterator[TestClient]:
    app = create_app(sqlite_services.settings, sqlite_services)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def test_the_register_page_is_public_and_lists_organisations(
    portal: TestClient, sqlite_services: Services
) -> None:
    empty = portal.get("/registre")
    assert empty.status_code == 200
    assert "Aucun projet pour le moment." in empty.text
    hub = sqlite_services.hub
    assert hub is not None
    grant_roles(sqlite_services)
    ctx = RequestContext(RESEARCHER_A, RESEARCHER_A.subject, purpose="research")
    permit = hub.permits.apply(ctx, Application.from_json(application()))
    hub.permits.step(ctx, permit.permit_id, "submit")

    page = portal.get("/registre")
    assert page.status_code == 200
    assert "Université de Bordeaux" in page.text
    assert "déposée" in page.text
    assert RESEARCHER_A.subject not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.text.count("<h1") == 1

    english = portal.get("/registre", headers={"Accept-Language": "en"})
    assert "Public register of access to health data" in english.text
    assert "submitted" in english.text
