"""The patient reads their record in Chromium: documents, one document in its sandboxed frame,
the synthesis, a chart, then adds a document; every page passes axe in light and dark."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import Portal, browser_fixture, check_accessibility, portal_fixture
from tests.support.journeys import signed_in_patient
from tests.support.record_pages import PNG

# Slow: browser journeys through several pages, each checked by axe in light and dark.
pytestmark = pytest.mark.slow

portal = portal_fixture()
browser = browser_fixture()


def test_patient_reads_documents_synthesis_and_a_chart(portal: Portal, browser: Browser) -> None:
    page = signed_in_patient(portal, browser, "lea@exemple-sante.fr", "/dossier").page
    check_accessibility(page, "record-documents")

    page.get_by_label("Classe").select_option("31")
    page.get_by_role("button", name="Filtrer").click()
    expect(page.get_by_role("link", name="Radiographie du thorax")).to_be_visible()
    expect(page.get_by_role("link", name="Compte rendu de consultation")).to_have_count(0)

    page.get_by_role("link", name="Radiographie du thorax").click()
    frame = page.locator("iframe.document-view")
    assert frame.get_attribute("sandbox") == ""
    check_accessibility(page, "record-document")

    page.goto(portal.url("/dossier/synthese"))
    expect(page.get_by_role("row", name="Potassium").get_by_text("bas")).to_be_visible()
    check_accessibility(page, "record-synthesis")

    page.get_by_role("link", name="Pression artérielle").click()
    expect(page.get_by_role("img", name="Pression artérielle")).to_be_visible()
    check_accessibility(page, "record-chart")

    page.goto(portal.url("/dossier/depot"))
    check_accessibility(page, "record-upload")
    page.get_by_label("Fichier").set_input_files(
        files=[{"name": "ordonnance.png", "mimeType": "image/png", "buffer": PNG}]
    )
    page.get_by_label("Titre").fill("Ordonnance du dentiste")
    page.get_by_label("Classe").select_option("42")
    page.get_by_label("Date du document").fill("2025-02-03")
    page.get_by_role("button", name="Ajouter le document").click()
    assert page.locator("h1").inner_text() == "Ordonnance du dentiste"
    assert page.get_by_role("status").inner_text() == "Votre document est ajouté à votre dossier."
    page.context.close()
