"""First activation of a space created automatically, in Chromium with JavaScript off: the code
taken from the notification outbox, a login and password, the second factor enrolled from the
QR code's key, then the person is in their space; the pages pass axe. With the same code a person
may object instead; a used or wrong code opens nothing."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from carnet.record.activation import ACTIVATION
from carnet.record.notifications import ACTIVATION_CODE
from tests.spec.helpers import patient
from tests.support.authn import PASSWORD
from tests.support.browser import (
    Portal,
    browser_fixture,
    check_accessibility,
    new_page,
    portal_fixture,
)
from tests.support.caller import AS_LOCAL_OPERATOR

# Slow: browser journeys through several pages, each checked by axe in light and dark.
pytestmark = pytest.mark.slow

portal = portal_fixture()
browser = browser_fixture()


def _space_with_a_code(portal: Portal) -> tuple[str, str]:
    """A space created without its person (no account yet) and the code the outbox holds."""
    services = portal.services
    pid = services.fhir.create("Patient", patient("Roux", "Camille"), ctx=AS_LOCAL_OPERATOR)
    patient_id = pid.stored.res_id
    services.record.open_space(patient_id, ctx=AS_LOCAL_OPERATOR)
    services.record.activation.issue(patient_id, ctx=AS_LOCAL_OPERATOR)
    queued = [
        n
        for n in services.record.pending_notifications()
        if n.patient_id == patient_id and n.kind == ACTIVATION_CODE
    ]
    assert len(queued) == 1 and queued[0].secret
    return patient_id, queued[0].secret


def _enter_code(page: Page, portal: Portal, code: str) -> None:
    page.goto(portal.url("/activation"))
    page.get_by_label("Code d'activation").fill(code)
    page.get_by_role("button", name="Continuer").click()


def test_person_activates_their_space_with_the_code_from_the_outbox(
    portal: Portal, browser: Browser
) -> None:
    patient_id, code = _space_with_a_code(portal)
    page = new_page(browser, java_script_enabled=False)
    _enter_code(page, portal, "WRONG-CODE-0000-0000")
    assert "n'est pas valable" in page.locator("#f-code-error").inner_text()

    _enter_code(page, portal, code.lower().replace("-", " "))  # as typed from a letter
    page.get_by_label("Identifiant").fill("camille@exemple-sante.fr")
    page.get_by_label("Mot de passe (obligatoire)", exact=True).fill(PASSWORD)
    page.get_by_label("Le même mot de passe, encore").fill(PASSWORD + "x")
    page.get_by_role("button", name="Créer mon compte").click()
    assert "pas identiques" in page.locator("#f-confirmation-error").inner_text()
    page.get_by_label("Mot de passe (obligatoire)", exact=True).fill(PASSWORD)
    page.get_by_label("Le même mot de passe, encore").fill(PASSWORD)
    page.get_by_role("button", name="Créer mon compte").click()

    expect(page.locator(".qr svg")).to_have_count(1)  # drawn on the server
    key = re.sub(r"\s", "", page.locator("code.secret").inner_text())
    page.get_by_label("Code à 6 chiffres").fill(pyotp.TOTP(key).now())
    page.get_by_role("button", name="Terminer l'activation").click()
    assert page.url == portal.url("/espace")
    assert "Votre espace est activé" in page.get_by_role("status").inner_text()

    account = portal.services.accounts.find_by_login("camille@exemple-sante.fr")
    assert account is not None and account.patient_id == patient_id and account.has_totp
    assert portal.services.record.activation.check(code, ACTIVATION) is None  # used up
    page.context.close()


def test_activation_pages_are_accessible(portal: Portal, browser: Browser) -> None:
    patient_id, code = _space_with_a_code(portal)
    page = new_page(browser)
    page.goto(portal.url("/activation"))
    check_accessibility(page, "activation-code")
    _enter_code(page, portal, code)
    check_accessibility(page, "activation-account")
    page.get_by_label("Identifiant").fill("dominique@exemple-sante.fr")
    page.get_by_label("Mot de passe (obligatoire)", exact=True).fill(PASSWORD)
    page.get_by_label("Le même mot de passe, encore").fill(PASSWORD)
    page.get_by_role("button", name="Créer mon compte").click()
    check_accessibility(page, "activation-second-factor")
    # Left at the QR code: a new code opens the page that finishes the activation.
    portal.services.record.activation.issue(patient_id, ctx=AS_LOCAL_OPERATOR)
    (again,) = [
        n.secret
        for n in portal.services.record.pending_notifications()
        if n.patient_id == patient_id and n.kind == ACTIVATION_CODE and n.secret != code
    ]
    _enter_code(page, portal, again or "")
    expect(page.locator('form[action="/activation/reprise"]')).to_have_count(1)
    check_accessibility(page, "activation-finish")
    page.context.close()


def test_person_objects_to_their_space_with_the_code_and_it_is_used_up(
    portal: Portal, browser: Browser
) -> None:
    patient_id, code = _space_with_a_code(portal)
    page = new_page(browser, java_script_enabled=False)
    _enter_code(page, portal, code)
    page.get_by_role("button", name="Je m'oppose à la création de mon espace").click()
    assert page.locator("h1").inner_text() == "Votre opposition est enregistrée"
    space = portal.services.record.space(patient_id)
    assert space is not None and space.reason == "objection"
    _enter_code(page, portal, code)  # the code opens nothing any more
    assert "n'est pas valable" in page.locator("#f-code-error").inner_text()
    page.context.close()
