"""The professional's journeys in a real browser (Chromium): sign in through the OpenID Connect
provider (the built-in development one), find a patient by INS, read the record, search in it,
deposit a document; and emergency access with its red banner. Every page is checked with axe-core
(0 WCAG 2.1 A/AA violation, light and dark)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from carnet.caller import Kind, Principal, RequestContext
from carnet.demo.pdf import make_pdf
from carnet.identity.ins import INS_NIR_OID, Ins, InsStatus, Traits, apply_to_patient
from tests.support.browser import (
    Portal,
    browser_fixture,
    check_accessibility,
    new_page,
    portal_fixture,
)
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.unit.record.helpers import CLAIRE, PAUL, Person

# Slow: a served portal and Chromium, two journeys of several pages each with axe in two schemes.
pytestmark = pytest.mark.slow

DOCTOR, NURSE = "Dr Médecin Démo", "Infirmière Démo"  # DEMO_PROFESSIONALS of the dev provider
DOCTOR_RPPS = "10000000011"

portal = portal_fixture(dev_idp=True)
browser = browser_fixture()


def _patient(portal: Portal, person: Person) -> str:
    traits = Traits.create(person.birth_name, person.given, person.birth, person.sex, person.place)
    body = apply_to_patient(
        {"resourceType": "Patient"},
        traits,
        InsStatus.QUAL,
        Ins(INS_NIR_OID, person.nir),
        outgoing=False,
    )
    return portal.services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


@pytest.fixture(scope="module")
def claire(portal: Portal) -> Iterator[str]:
    fhir = portal.services.fhir
    patient = _patient(portal, CLAIRE)
    pdf = make_pdf("Compte rendu des urgences", ["Poignet gauche fracturé, plâtre."])
    fhir.create(
        "DocumentReference",
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "type": {
                "coding": [{"system": "http://loinc.org", "code": "11488-4"}],
                "text": "Compte rendu des urgences",
            },
            "subject": {"reference": f"Patient/{patient}"},
            "date": "2025-03-12T10:00:00+01:00",
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "data": base64.b64encode(pdf).decode(),
                    }
                }
            ],
        },
        ctx=AS_LOCAL_OPERATOR,
    )
    person = RequestContext(Principal(Kind.PERSON, "acct-claire", patient_id=patient), "claire")
    portal.services.controls.declare_care(person, None, DOCTOR_RPPS, medecin_traitant=True)
    yield patient


def _sign_in(page: Page, portal: Portal, who: str) -> None:
    page.goto(portal.url("/auth/pro/login?next=/pro"))
    page.get_by_role("button", name=re.compile(who)).click()
    page.wait_for_url(re.compile(r"/pro$"))


def test_professional_signs_in_finds_reads_searches_and_deposits(
    portal: Portal, browser: Browser, claire: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    page = new_page(browser)
    _sign_in(page, portal, DOCTOR)
    expect(page.get_by_role("heading", level=1)).to_have_text("Trouver un patient")
    check_accessibility(page, "pro-find")

    page.get_by_role("textbox", name=re.compile("^Matricule INS")).fill(CLAIRE.nir)
    page.get_by_role("button", name="Chercher par INS").click()
    expect(page.get_by_text("INS qualifiée")).to_be_visible()
    check_accessibility(page, "pro-found")

    page.get_by_role("link", name=re.compile("LEFEBVRE")).click()
    expect(page.get_by_role("heading", name="Synthèse")).to_be_visible()
    expect(page.get_by_role("link", name="Compte rendu des urgences")).to_be_visible()
    check_accessibility(page, "pro-record")

    page.get_by_role("searchbox", name="Chercher dans le dossier").fill("fracture")
    page.get_by_role("button", name="Chercher", exact=True).click()
    expect(page.locator("mark", has_text="fracturé")).to_be_visible()
    check_accessibility(page, "pro-search")

    page.get_by_role("link", name="Retour au dossier").click()
    page.get_by_role("link", name="Déposer un document").click()
    check_accessibility(page, "pro-deposit")
    page.get_by_role("combobox", name=re.compile("^Type de document")).select_option("11502-2")
    page.locator("#f-date").fill("2025-03-01")
    report = tmp_path_factory.mktemp("deposit") / "biologie.pdf"
    report.write_bytes(make_pdf("Biologie", ["Créatinine normale."]))
    page.locator("#f-file").set_input_files(str(report))
    page.get_by_role("button", name="Déposer").click()
    expect(page.get_by_role("status")).to_contain_text("Le document est déposé")
    expect(page.get_by_role("link", name="Compte rendu d'examens biologiques")).to_be_visible()
    page.context.close()


def test_emergency_access_with_its_reason_shows_the_red_banner(
    portal: Portal, browser: Browser
) -> None:
    paul = _patient(portal, PAUL)
    page = new_page(browser)  # (axe needs scripts; the pages themselves have none)
    _sign_in(page, portal, NURSE)
    page.get_by_role("textbox", name=re.compile("^Matricule INS")).fill(PAUL.nir)
    page.get_by_role("button", name="Chercher par INS").click()
    expect(page.get_by_text("Aucun dossier que vous pouvez ouvrir ne correspond.")).to_be_visible()
    check_accessibility(page, "pro-emergency-form")
    page.get_by_role("combobox", name=re.compile("^Motif")).select_option("unconscious")
    page.get_by_role("button", name="Ouvrir le dossier en urgence").click()
    page.wait_for_url(re.compile(f"/pro/patients/{paul}$"))
    expect(page.locator(".banner-danger")).to_contain_text("Accès en urgence")
    check_accessibility(page, "pro-emergency-record")
    page.context.close()
