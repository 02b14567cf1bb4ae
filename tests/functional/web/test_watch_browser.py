"""The security officer's queue in a real browser: the queue, an alert and its closing form, with
no accessibility violation in light and dark; closing it empties the queue."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.caller import RequestContext
from carnet.watch.wiring import build
from tests.support.browser import (
    Portal,
    browser_fixture,
    check_accessibility,
    new_page,
    portal_fixture,
)
from tests.support.watch_world import build_watch_world

portal = portal_fixture()
browser = browser_fixture()

pytestmark = pytest.mark.slow  # reason: a real Chromium and a served portal (about 5 s here)

CLI = RequestContext.local_operator(actor="operator:cli", source="cli", purpose="security")


def test_the_officer_closes_an_alert_in_the_browser_and_the_pages_are_accessible(
    portal: Portal, browser: Browser
) -> None:
    s = portal.services
    build_watch_world(s)
    officer = s.accounts.create_operator("officer", "a long operator passphrase 42")
    watch = build(s.settings, s.engine, s.fhir, s.audit, s.crypto.blind)
    watch.grant(CLI, officer)
    watch.scan(CLI)
    cookie, csrf = s.sessions.open(officer, second_factor=True)
    page = new_page(browser)
    page.context.add_cookies(
        [
            {"name": SESSION_COOKIE, "value": cookie, "url": portal.url("/")},
            {"name": CSRF_COOKIE, "value": csrf, "url": portal.url("/")},
        ]
    )
    page.goto(portal.url("/securite/alertes"))
    assert "même nom et même adresse" in page.locator("main").inner_text()
    check_accessibility(page, "watch-queue")
    page.locator("tbody a").first.click()
    page.wait_for_url("**/securite/alertes/*")
    check_accessibility(page, "watch-alert")
    page.select_option("#f-outcome", "false-positive")
    page.get_by_role("button", name="Clore").click()
    page.wait_for_url("**/securite/alertes")
    assert "Aucune alerte ouverte." in page.locator("main").inner_text()
    check_accessibility(page, "watch-queue-empty")
    page.context.close()
