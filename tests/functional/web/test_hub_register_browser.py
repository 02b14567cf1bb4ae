"""The public register in a real browser: a permit's journey (applied, submitted, approved) shows
on the page without sign-in, and the page has no accessibility violation in light and dark."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from carnet.caller import RequestContext
from carnet.hub.application import Application
from tests.support.browser import (
    Portal,
    browser_fixture,
    check_accessibility,
    new_page,
    portal_fixture,
)
from tests.support.hub import RESEARCHER_A, REVIEWER_1, application, grant_roles

portal = portal_fixture()
browser = browser_fixture()

pytestmark = pytest.mark.slow  # reason: a real Chromium and a served portal (about 5 s here)


def _ctx(who) -> RequestContext:  # type: ignore[no-untyped-def]
    return RequestContext(who, who.subject, purpose="research")


def test_the_register_shows_each_step_and_is_accessible(portal: Portal, browser: Browser) -> None:
    hub = portal.services.hub
    assert hub is not None
    grant_roles(portal.services)
    permit = hub.permits.apply(_ctx(RESEARCHER_A), Application.from_json(application()))
    page = new_page(browser)
    page.goto(portal.url("/registre"))
    assert "Aucun projet" in page.locator("main").inner_text()  # a draft is not public
    hub.permits.step(_ctx(RESEARCHER_A), permit.permit_id, "submit")
    page.reload()
    assert "déposée" in page.locator("tbody").inner_text()
    hub.permits.step(_ctx(REVIEWER_1), permit.permit_id, "review")
    hub.permits.step(_ctx(REVIEWER_1), permit.permit_id, "approve")
    page.reload()
    row = page.locator("tbody tr").first.inner_text()
    assert "Université de Bordeaux" in row and "accordée" in row
    check_accessibility(page, "hub-register")
    page.context.close()
