"""The portal's foundation in a real browser: the home page is accessible in light and dark, its
language switch works without JavaScript, and the strict CSP lets Carnet's own stylesheet load;
and the axe harness fails a page with a violation, photographing it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import (
    SCREENSHOTS,
    Portal,
    axe_violations,
    browser_fixture,
    check_accessibility,
    new_page,
    portal_fixture,
)

portal = portal_fixture()
browser = browser_fixture()


def test_home_page_has_no_accessibility_violation_in_light_and_dark(
    portal: Portal, browser: Browser
) -> None:
    page = new_page(browser)
    page.goto(portal.url("/"))
    expect(page.locator("h1")).to_have_count(1)
    assert page.get_attribute("html", "lang") == "fr"
    check_accessibility(page, "home")
    page.context.close()


def test_language_switch_shows_the_page_in_english_then_french(
    portal: Portal, browser: Browser
) -> None:
    page = new_page(browser, java_script_enabled=False)
    page.goto(portal.url("/"))
    page.get_by_role("link", name="English").click()
    assert page.get_attribute("html", "lang") == "en"
    assert page.locator("h1").inner_text() == "Welcome to Carnet"
    assert page.get_by_role("status").inner_text() == "Carnet's language has changed."
    page.get_by_role("link", name="Français").click()
    assert page.locator("h1").inner_text() == "Bienvenue sur Carnet"
    page.context.close()


def test_strict_csp_lets_carnets_own_stylesheet_apply(portal: Portal, browser: Browser) -> None:
    page = new_page(browser)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    page.goto(portal.url("/"))
    # The skip link sits off screen until focused: the stylesheet applied.
    assert page.locator(".skip-link").bounding_box()["x"] < 0  # type: ignore[index]
    page.keyboard.press("Tab")
    assert page.locator(".skip-link").bounding_box()["x"] >= 0  # type: ignore[index]
    assert refused == []
    page.context.close()


def test_axe_helper_reports_a_violation_when_there_is_one(browser: Browser) -> None:
    """The harness itself: a page with an unlabelled field is not passed as accessible."""
    page = new_page(browser)
    page.set_content('<!doctype html><html lang="fr"><title>t</title><input type="text"></html>')
    assert "label" in {v["id"] for v in axe_violations(page)}
    page.context.close()


def test_a_failing_check_fails_and_photographs_the_page_in_its_scheme(browser: Browser) -> None:
    """A check that finds a violation fails naming it, and leaves a screenshot of the page in
    the scheme where it was found for a human look (passing checks leave none by default)."""
    page = new_page(browser)
    page.set_content('<!doctype html><html lang="fr"><title>t</title><input type="text"></html>')
    shot = SCREENSHOTS / "harness-unlabelled-field-light.png"
    shot.unlink(missing_ok=True)  # a previous run's
    with pytest.raises(AssertionError, match=r"harness-unlabelled-field \(light\):\nlabel"):
        check_accessibility(page, "harness-unlabelled-field")
    assert shot.read_bytes().startswith(b"\x89PNG")
    page.context.close()
