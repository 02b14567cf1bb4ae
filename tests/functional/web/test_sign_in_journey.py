"""A person signs in through the portal's pages in Chromium: password, then the code of their
authenticator app, with JavaScript off; the pages pass axe in light and dark; and a real SMART
client (``fhirclient``) runs a standalone launch whose sign-in and grant happen in the browser."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pyotp
import pytest
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from playwright.sync_api import Browser, Page, expect

from carnet.authn.clients import ClientKind
from tests.spec.helpers import observation, patient
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
_numbers = itertools.count(1)


@dataclass
class Person:
    login: str
    patient_id: str
    totp: pyotp.TOTP


@pytest.fixture
def person(portal: Portal) -> Person:
    services = portal.services
    pid = services.fhir.create("Patient", patient("Vernadet", "Anouk"), ctx=AS_LOCAL_OPERATOR)
    login = f"anouk{next(_numbers)}@exemple-sante.fr"
    account = services.accounts.create_person(login, PASSWORD, pid.stored.res_id)
    totp = pyotp.parse_uri(services.accounts.enroll_totp(account))
    assert isinstance(totp, pyotp.TOTP)
    return Person(login, pid.stored.res_id, totp)


def _password_step(page: Page, login: str, password: str = PASSWORD) -> None:
    page.get_by_label("Identifiant").fill(login)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Continuer").click()


def test_person_signs_in_with_password_then_code_without_javascript(
    portal: Portal, browser: Browser, person: Person
) -> None:
    page = new_page(browser, java_script_enabled=False)
    page.goto(portal.url("/espace"))
    assert page.url.startswith(portal.url("/connexion?suivant="))

    _password_step(page, person.login, "not the password")
    expect(page.get_by_role("alert")).to_be_visible()  # the error summary
    assert page.get_by_label("Mot de passe").get_attribute("aria-invalid") == "true"
    assert "incorrect" in page.locator("#f-password-error").inner_text()

    _password_step(page, person.login)
    assert page.url.startswith(portal.url("/connexion/code"))
    page.get_by_label("Code à 6 chiffres").fill(person.totp.now())
    page.get_by_role("button", name="Me connecter").click()
    assert page.url == portal.url("/espace")
    assert page.locator("h1").inner_text() == "Mon espace"
    assert page.get_by_role("status").inner_text() == "Vous êtes connecté(e)."

    page.get_by_role("button", name="Se déconnecter").click()
    assert page.url == portal.url("/")
    page.goto(portal.url("/espace"))
    assert page.url.startswith(portal.url("/connexion"))
    page.context.close()


def test_sign_in_pages_are_accessible_with_and_without_errors(
    portal: Portal, browser: Browser, person: Person
) -> None:
    page = new_page(browser)
    page.goto(portal.url("/connexion"))
    check_accessibility(page, "sign-in")
    _password_step(page, person.login, "not the password")
    check_accessibility(page, "sign-in-error")
    _password_step(page, person.login)
    check_accessibility(page, "sign-in-code")
    page.get_by_label("Code à 6 chiffres").fill("000000")
    page.get_by_role("button", name="Me connecter").click()
    check_accessibility(page, "sign-in-code-error")
    page.get_by_label("Code à 6 chiffres").fill(person.totp.now())
    page.get_by_role("button", name="Me connecter").click()
    check_accessibility(page, "space")
    page.context.close()


def test_code_page_without_a_password_first_sends_back_to_sign_in(
    portal: Portal, browser: Browser
) -> None:
    page = new_page(browser)
    page.goto(portal.url("/connexion/code"))
    assert page.url == portal.url("/connexion")
    page.context.close()


def test_fhirclient_standalone_launch_signs_in_and_grants_in_the_browser(
    portal: Portal, browser: Browser, person: Person
) -> None:
    services = portal.services
    for value in (168.0, 169.5):
        services.fhir.create(
            "Observation", observation(person.patient_id, value=value), ctx=AS_LOCAL_OPERATOR
        )
    redirect_uri = "http://127.0.0.1:9/callback"  # caught in the browser, never reached
    app, _ = services.clients.register(
        "Carnet de tension",
        ClientKind.PUBLIC,
        ["patient/*.read", "launch/patient", "openid", "fhirUser"],
        redirect_uris=[redirect_uri],
    )
    smart = smart_client.FHIRClient(
        settings={
            "app_id": app.client_id,
            "api_base": portal.url("/fhir"),
            "redirect_uri": redirect_uri,
            "scope": "patient/*.read openid fhirUser",
        }
    )
    page = new_page(browser)
    # The app's redirect URI is answered in the browser: nothing listens there.
    page.route(
        "http://127.0.0.1:9/**",
        lambda route: route.fulfill(status=200, content_type="text/plain", body="back in app"),
    )
    page.goto(smart.authorize_url)
    page.get_by_role("link", name="Patient : se connecter").click()
    _password_step(page, person.login)
    page.get_by_label("Code à 6 chiffres").fill(person.totp.now())
    page.get_by_role("button", name="Me connecter").click()
    assert page.url.startswith(portal.url("/oauth/authorize"))  # back to the grant screen
    with page.expect_request(lambda request: request.url.startswith(redirect_uri)) as caught:
        page.get_by_role("button", name="Autoriser").click()
    back = caught.value.url

    smart.handle_callback(back)  # the code exchanged with the PKCE verifier
    assert smart.patient_id == person.patient_id
    search = Observation.where(struct={"patient": person.patient_id})
    found = list(search.perform_resources_iter(smart.server))
    assert sorted(o.valueQuantity.value for o in found) == [168.0, 169.5]
    page.context.close()
