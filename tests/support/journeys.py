"""The start of a patient's browser journey: a record built, a person account with TOTP for its
patient, and a page signed in through the login and code forms, landing where it first went."""

from __future__ import annotations

from dataclasses import dataclass

import pyotp
from playwright.sync_api import Browser, Page

from tests.support.authn import PASSWORD
from tests.support.browser import Portal, new_page
from tests.support.record_pages import RecordWorld, build_record


@dataclass(frozen=True)
class SignedInPatient:
    page: Page
    world: RecordWorld


def signed_in_patient(portal: Portal, browser: Browser, login: str, path: str) -> SignedInPatient:
    """A new page of the patient of a fresh record, signed in as ``login`` at ``path``."""
    services = portal.services
    world = build_record(services)
    account = services.accounts.create_person(login, PASSWORD, world.patient_id)
    totp = pyotp.parse_uri(services.accounts.enroll_totp(account))
    assert isinstance(totp, pyotp.TOTP)

    page = new_page(browser)
    page.goto(portal.url(path))
    page.get_by_label("Identifiant").fill(login)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Continuer").click()
    page.get_by_label("Code à 6 chiffres").fill(totp.now())
    page.get_by_role("button", name="Me connecter").click()
    assert page.url == portal.url(path)
    return SignedInPatient(page, world)
