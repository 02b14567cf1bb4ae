"""The patient completes their medical profile in Chromium: adds an allergy, a measurement
(with a decimal comma, after a wrong value the form explains), sees them in the profile and
the chart, deletes the allergy after confirming; then sees a PDF inline in its sandboxed frame,
drawn as images. Every page passes axe in light and dark."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import Portal, browser_fixture, check_accessibility, portal_fixture
from tests.support.journeys import signed_in_patient

# Slow: a browser journey through several pages, each checked by axe in light and dark.
pytestmark = pytest.mark.slow

portal = portal_fixture()
browser = browser_fixture()


def test_patient_completes_their_profile_and_sees_a_pdf_inline(
    portal: Portal, browser: Browser
) -> None:
    patient = signed_in_patient(portal, browser, "zoe@exemple-sante.fr", "/espace/profil")
    page, world = patient.page, patient.world
    check_accessibility(page, "profile")

    page.get_by_role("link", name="Ajouter une allergie").click()
    check_accessibility(page, "profile-form")
    page.get_by_label("Substance").fill("Pénicilline")
    page.get_by_label("Réaction").fill("Urticaire")
    page.get_by_label("Gravité").select_option("high")
    page.get_by_role("button", name="Enregistrer").click()
    assert page.get_by_role("status").inner_text() == "C'est enregistré dans votre profil médical."
    expect(page.get_by_text("Pénicilline")).to_be_visible()

    page.get_by_role("link", name="Ajouter une mesure").click()
    page.get_by_label("Mesure (obligatoire)", exact=True).select_option("poids")
    page.get_by_label("Valeur").fill("soixante-douze")
    page.get_by_label("Date de la mesure").fill("2025-04-20")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("alert").get_by_text("Saisissez un nombre")).to_be_visible()
    assert page.get_by_label("Valeur").get_attribute("aria-invalid") == "true"
    check_accessibility(page, "profile-form-errors")
    page.get_by_label("Valeur").fill("72,5")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_text("72,5 kg")).to_be_visible()

    page.goto(portal.url("/dossier/mesures/poids"))
    expect(page.get_by_role("cell", name="72,5").first).to_be_visible()

    page.goto(portal.url("/espace/profil"))
    page.get_by_role("link", name="Supprimer : Pénicilline").click()
    check_accessibility(page, "profile-delete")
    page.get_by_role("button", name="Supprimer").click()
    assert page.get_by_role("status").inner_text() == "L'élément est supprimé de votre profil."
    expect(page.get_by_text("Pénicilline")).to_have_count(0)

    page.goto(portal.url(f"/dossier/documents/{world.consult}"))
    frame = page.locator("iframe.document-view")
    assert frame.get_attribute("sandbox") == ""
    drawn = page.frame_locator("iframe.document-view").get_by_role("img", name="Page 1 sur 1")
    box = drawn.bounding_box()
    assert box is not None and box["width"] > 300  # the page is drawn, not a blocked viewer
    check_accessibility(page, "record-document-pdf")
    page.context.close()
