"""The patient's controls in a real browser: mask with its preview, block, emergency opposition,
research opt-out, alerts, access history with "Vérifier", switching to a child's space, export,
closing; and the denials (a masked document absent for the professional, items kept from a
representative, another's history answering as missing, a POST without its CSRF token).

One portal and one Chromium for the module; each journey in a fresh browser context signed in
with a session of the person's account (sign-in itself is the foundation's journey)."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.caller import Kind, Principal, RequestContext
from carnet.fhir.errors import FhirError
from carnet.policy.control_events import ControlError
from carnet.policy.service import INVISIBLE_REPRESENTANTS_LEGAUX
from carnet.record.alerts import AlertService
from carnet.record.models import record_notification
from carnet.record.notifications import ALERT_FIRST_ACCESS
from tests.spec.test_audit import docs_verifier
from tests.support.browser import (
    Portal,
    browser_fixture,
    check_accessibility,
    new_page,
    portal_fixture,
)
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.unit.record.controls_setup import document, practitioner

portal = portal_fixture()
browser = browser_fixture()

PASSWORD = "un mot de passe assez long"
GP, NURSE, ER = "10000000011", "10000000029", "10000000052"


@dataclass
class Person:
    patient: str
    account: str
    totp: pyotp.TOTP

    def ctx(self) -> RequestContext:
        return RequestContext(
            principal=Principal(Kind.PERSON, self.account, patient_id=self.patient),
            actor=self.account,
        )


@dataclass
class Cast:
    alice: Person
    bob: Person
    paul: Person
    lea: str
    alice_doc: str
    lea_visible: str
    lea_kept: str
    pros: dict[str, RequestContext]


def _patient(portal: Portal, given: str, family: str, born: str) -> str:
    body = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "birthDate": born,
    }
    return portal.services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _person(portal: Portal, login: str, patient: str) -> Person:
    accounts = portal.services.accounts
    account = accounts.create_person(login, PASSWORD, patient)
    totp = pyotp.parse_uri(accounts.enroll_totp(account))
    portal.services.record.open_space(patient, ctx=AS_LOCAL_OPERATOR)
    return Person(patient, account, totp)


@pytest.fixture(scope="module")
def cast(portal: Portal) -> Cast:
    s = portal.services
    fhir = s.fhir
    alice = _person(portal, "alice@exemple.fr", _patient(portal, "Alice", "Durand", "1980-05-02"))
    bob = _person(portal, "bob@exemple.fr", _patient(portal, "Bob", "Leroy", "1975-01-09"))
    paul = _person(portal, "paul@exemple.fr", _patient(portal, "Paul", "Moreau", "1978-07-14"))
    lea = _patient(portal, "Léa", "Moreau", "2014-03-12")
    s.record.open_space(lea, ctx=AS_LOCAL_OPERATOR)
    s.record.representatives.add(lea, paul.patient, "parent", ctx=AS_LOCAL_OPERATOR)
    for rpps, given, family in (
        (GP, "Jeanne", "Martin"),
        (NURSE, "Luc", "Petit"),
        (ER, "Paul", "Urgent"),
    ):
        fhir.create("Practitioner", practitioner(rpps, given, family), ctx=AS_LOCAL_OPERATOR)
    pros = {}
    for rpps, profession in ((GP, "physician"), (NURSE, "nurse"), (ER, "physician")):
        account = s.accounts.create_professional(f"{rpps}@exemple.fr", None, rpps, profession)
        principal = s.accounts.principal_for(account)
        pros[rpps] = RequestContext(principal=principal, actor=principal.subject)
    alice_doc = fhir.create(
        "DocumentReference",
        document(alice.patient, "Compte rendu de cardiologie"),
        ctx=AS_LOCAL_OPERATOR,
    ).stored.res_id
    lea_visible = fhir.create(
        "DocumentReference", document(lea, "Carnet de vaccination"), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    lea_kept = fhir.create(
        "DocumentReference", document(lea, "Consultation confidentielle"), ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    as_lea = RequestContext(
        principal=Principal(Kind.PERSON, "acct-lea", patient_id=lea), actor="acct-lea"
    )
    s.controls.set_mask(
        as_lea, f"DocumentReference/{lea_kept}", INVISIBLE_REPRESENTANTS_LEGAUX, on=True
    )
    s.controls.declare_care(alice.ctx(), None, GP, medecin_traitant=True)
    s.controls.declare_care(alice.ctx(), None, NURSE, medecin_traitant=False)
    return Cast(alice, bob, paul, lea, alice_doc, lea_visible, lea_kept, pros)


def signed_in(browser: Browser, portal: Portal, person: Person) -> Page:
    cookie, csrf = portal.services.sessions.open(person.account, second_factor=True)
    page = new_page(browser)
    page.context.add_cookies(
        [
            {"name": SESSION_COOKIE, "value": cookie, "url": portal.base},
            {"name": CSRF_COOKIE, "value": csrf, "url": portal.base},
        ]
    )
    return page


@pytest.fixture
def journeys(browser: Browser) -> Iterator[list[Page]]:
    opened: list[Page] = []
    yield opened
    for page in opened:
        page.context.close()


def _open(journeys: list[Page], browser: Browser, portal: Portal, person: Person) -> Page:
    page = signed_in(browser, portal, person)
    journeys.append(page)
    return page


def test_mask_a_document_after_seeing_who_still_sees_it(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    page = _open(journeys, browser, portal, cast.alice)
    page.goto(portal.url("/espace/controles"))
    check_accessibility(page, "patient-controls")
    page.get_by_role("link", name="Compte rendu de cardiologie").click()
    now = page.locator('h2:has-text("Le voient aujourd\'hui") + ul')
    expect(now).to_contain_text("Dr Luc Petit")
    expect(now).to_contain_text("Dr Jeanne Martin")
    still = page.locator("h2:has-text('Si vous le masquez') + ul")
    expect(still).to_contain_text("Dr Jeanne Martin")
    expect(still).not_to_contain_text("Luc Petit")
    check_accessibility(page, "patient-controls-document")
    page.get_by_role("button", name="Masquer aux professionnels").click()
    expect(page.get_by_role("status")).to_contain_text("masqué aux professionnels")
    # the nurse (care, not médecin traitant): the masked document is absent, as if missing
    with pytest.raises(FhirError) as hidden:
        portal.services.fhir.read("DocumentReference", cast.alice_doc, ctx=cast.pros[NURSE])
    assert hidden.value.status == 404
    listing = portal.services.fhir.search(
        "", "DocumentReference", [("patient", cast.alice.patient)], ctx=cast.pros[NURSE]
    )
    assert not listing.get("entry")
    page.get_by_role("button", name="Rendre visible aux professionnels").click()
    portal.services.fhir.read("DocumentReference", cast.alice_doc, ctx=cast.pros[NURSE])


def test_block_a_professional_then_unblock_with_password_and_code(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    page = _open(journeys, browser, portal, cast.alice)
    page.goto(portal.url("/espace/controles"))
    page.get_by_label("Numéro RPPS du professionnel").fill("123")
    page.get_by_role("button", name="Bloquer", exact=True).click()
    expect(page.locator(".error-summary")).to_contain_text("11 chiffres")
    page.get_by_label("Numéro RPPS du professionnel").fill(ER)
    page.get_by_role("button", name="Bloquer", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("est bloqué")
    with pytest.raises(ControlError) as refused:  # blocked: not even in an emergency
        portal.services.emergency.break_glass(cast.pros[ER], cast.alice.patient, "unconscious")
    assert refused.value.status == 403
    form = page.locator("form", has=page.locator("input[name=action][value=debloquer]"))
    form.get_by_label("Mot de passe").fill(PASSWORD)
    form.get_by_label("Nouveau code à usage unique").fill("000000")
    form.get_by_role("button", name="Débloquer").click()
    expect(page.locator(".error-summary")).to_contain_text("Mot de passe ou code incorrect")
    assert ER in portal.services.controls.controls(cast.alice.ctx(), None).blocked
    form = page.locator("form", has=page.locator("input[name=action][value=debloquer]"))
    form.get_by_label("Mot de passe").fill(PASSWORD)
    form.get_by_label("Nouveau code à usage unique").fill(cast.alice.totp.now())
    form.get_by_role("button", name="Débloquer").click()
    expect(page.get_by_role("status")).to_contain_text("n'est plus bloqué")
    assert portal.services.controls.controls(cast.alice.ctx(), None).blocked == []


def test_opt_out_of_research_and_oppose_emergency_access(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    page = _open(journeys, browser, portal, cast.bob)
    page.goto(portal.url("/espace/controles"))
    page.get_by_label("Je refuse que mes données servent à la recherche").check()
    page.locator("form:has(input[value=recherche])").get_by_role("button").click()
    expect(page.get_by_role("status")).to_contain_text("enregistrés")
    assert portal.services.research_optout.opted_out(cast.bob.patient) is True
    page.get_by_label("Je m'oppose à l'accès en urgence à mon dossier").check()
    page.locator("form:has(input[value=urgence])").get_by_role("button").click()
    with pytest.raises(ControlError) as refused:
        portal.services.emergency.break_glass(cast.pros[ER], cast.bob.patient, "unconscious")
    assert refused.value.status == 403


def test_alerts_chosen_in_the_portal_reach_the_outbox(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    page = _open(journeys, browser, portal, cast.paul)
    page.goto(portal.url("/espace/alertes"))
    check_accessibility(page, "patient-alerts")
    page.get_by_label("quand un professionnel consulte mon dossier pour la première fois").check()
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("status")).to_contain_text("alertes sont enregistrées")
    s = portal.services
    s.controls.declare_care(cast.paul.ctx(), None, NURSE, medecin_traitant=False)
    s.fhir.read("Patient", cast.paul.patient, ctx=cast.pros[NURSE])
    AlertService(s.engine, s.audit, s.controls).sweep()
    n = record_notification.c
    with s.engine.connect() as conn:
        kinds = conn.execute(select(n.kind).where(n.patient_id == cast.paul.patient)).scalars()
        assert ALERT_FIRST_ACCESS in set(kinds)


def test_access_history_with_verification_and_proof(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page], tmp_path: Path
) -> None:
    s = portal.services
    s.fhir.read("DocumentReference", cast.alice_doc, ctx=cast.pros[GP])
    page = _open(journeys, browser, portal, cast.alice)
    page.goto(portal.url("/espace/historique"))
    row = page.locator("tr", has_text="Dr Jeanne Martin").filter(has_text="a consulté").first
    expect(row).to_contain_text("Médecin")
    check_accessibility(page, "patient-history")
    row.get_by_role("link", name="Vérifier").click()
    expect(page.get_by_role("status")).to_contain_text("Vérifié")
    check_accessibility(page, "patient-history-entry")
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger la preuve").click()
    proof = tmp_path / "preuve.ndjson"
    download.value.save_as(proof)
    script = tmp_path / "verify_export.py"
    script.write_text(docs_verifier(), encoding="utf-8")
    key = base64.b64encode(s.audit.public_key).decode()
    done = subprocess.run(
        [sys.executable, str(script), str(proof), key], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("OK: 1 events"), done.stdout
    page.goto(portal.url("/espace/historique"))
    page.get_by_label("Type d'accès").select_option("care")
    page.get_by_role("button", name="Filtrer").click()
    expect(page.locator("tbody")).not_to_contain_text("Vous-même")
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger ces lignes (CSV)").click()
    csv_file = tmp_path / "historique.csv"
    download.value.save_as(csv_file)
    text = csv_file.read_text(encoding="utf-8-sig")
    assert "Dr Jeanne Martin" in text, text


def test_a_parent_switches_to_the_childs_space_without_the_items_kept_from_them(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    page = _open(journeys, browser, portal, cast.paul)
    page.goto(portal.url("/espace"))
    page.get_by_role("link", name="Représentants légaux").click()
    check_accessibility(page, "patient-representatives")
    page.get_by_role("link", name="Ouvrir l'espace de Léa Moreau").click()
    page.get_by_role("link", name="Qui voit son dossier").click()
    expect(page.locator("main")).to_contain_text("Carnet de vaccination")
    expect(page.locator("main")).not_to_contain_text("Consultation confidentielle")
    response = page.goto(portal.url(f"/espace/controles/document/{cast.lea_kept}"))
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Page introuvable")


def test_download_the_whole_record(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    page = _open(journeys, browser, portal, cast.alice)
    page.goto(portal.url("/espace/mes-donnees"))
    check_accessibility(page, "patient-my-data")
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger le dossier").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert {"README.txt", "record.json"} <= set(archive.namelist())
    assert cast.alice_doc in archive.read("record.json").decode()


def test_close_the_space_after_a_step_up(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    page = _open(journeys, browser, portal, cast.bob)
    page.goto(portal.url("/espace/mes-donnees"))
    page.get_by_role("button", name="Fermer l'espace").click()
    expect(page.locator(".error-summary")).to_contain_text("Cochez la case")
    page.get_by_label("Je comprends et je veux fermer l'espace").check()
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_label("Nouveau code à usage unique").fill(cast.bob.totp.now())
    page.get_by_role("button", name="Fermer l'espace").click()
    expect(page.locator("main")).to_contain_text("Cet espace est fermé")
    space = portal.services.record.space(cast.bob.patient)
    assert space is not None and space.state == "closed"
    assert space.retention_until and space.retention_until[:4] > str(datetime.now(UTC).year)


def test_another_patients_history_is_never_reachable_by_url(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    s = portal.services
    s.fhir.read("DocumentReference", cast.alice_doc, ctx=cast.pros[GP])
    s.audit.checkpoint()
    mine = s.audit.patient_history(cast.alice.patient, cast.alice.ctx(), count=1, offset=0)
    event_id = mine.events[0].event_id
    page = _open(journeys, browser, portal, cast.paul)
    for path in (
        f"/espace/historique?pour={cast.alice.patient}",
        f"/espace/historique/{event_id}",
        f"/espace/historique/{event_id}/preuve?pour={cast.alice.patient}",
        f"/espace/historique.csv?pour={cast.alice.patient}",
        "/espace/historique?pour=no-such-patient",
    ):
        response = page.goto(portal.url(path))
        assert response is not None and response.status == 404, path
        expect(page.locator("h1")).to_have_text("Page introuvable")


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    page = _open(journeys, browser, portal, cast.alice)
    before = portal.services.controls.controls(cast.alice.ctx(), None).blocked
    answer = page.request.post(
        portal.url("/espace/controles/blocage"), form={"rpps": GP, "action": "bloquer"}
    )
    assert answer.status == 403
    answer = page.request.post(
        portal.url("/espace/controles/blocage"),
        form={"rpps": GP, "action": "bloquer", "csrf_token": "not-the-token"},
    )
    assert answer.status == 403
    assert portal.services.controls.controls(cast.alice.ctx(), None).blocked == before


def test_the_controls_pages_speak_english_when_asked(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    cookie, csrf = portal.services.sessions.open(cast.paul.account, second_factor=True)
    page = new_page(browser, locale="en-GB")
    journeys.append(page)
    page.context.add_cookies(
        [
            {"name": SESSION_COOKIE, "value": cookie, "url": portal.base},
            {"name": CSRF_COOKIE, "value": csrf, "url": portal.base},
        ]
    )
    for path, title in (
        ("/espace/controles", "Who sees my record"),
        ("/espace/historique", "Access history"),
        ("/espace/alertes", "My alerts"),
        ("/espace/mes-donnees", "My data"),
    ):
        page.goto(portal.url(path))
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator("html")).to_have_attribute("lang", "en")


def test_a_long_history_is_paged_newest_first(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    for _ in range(101):
        portal.services.fhir.read("Patient", cast.alice.patient, ctx=cast.pros[GP])
    page = _open(journeys, browser, portal, cast.alice)
    page.goto(portal.url("/espace/historique?motif=care"))
    expect(page.locator("main")).to_contain_text("Page 1 sur 2")
    expect(page.locator("tbody tr")).to_have_count(100)
    page.get_by_role("link", name="Accès plus anciens").click()
    expect(page.locator("main")).to_contain_text("Page 2 sur 2")
    expect(page.get_by_label("Type d'accès")).to_have_value("care")  # the filter is kept
    page.get_by_role("link", name="Accès plus récents").click()
    expect(page.locator("main")).to_contain_text("Page 1 sur 2")


def test_masking_works_with_javascript_off(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    cookie, csrf = portal.services.sessions.open(cast.alice.account, second_factor=True)
    page = new_page(browser, java_script_enabled=False)
    journeys.append(page)
    page.context.add_cookies(
        [
            {"name": SESSION_COOKIE, "value": cookie, "url": portal.base},
            {"name": CSRF_COOKIE, "value": csrf, "url": portal.base},
        ]
    )
    page.goto(portal.url(f"/espace/controles/document/{cast.alice_doc}"))
    page.get_by_role("button", name="Masquer aux professionnels").click()
    expect(page.get_by_role("status")).to_contain_text("masqué aux professionnels")
    page.get_by_role("button", name="Rendre visible aux professionnels").click()
    expect(page.get_by_role("status")).to_contain_text("de nouveau visible")


def test_a_form_missing_a_field_answers_with_the_page_and_changes_nothing(
    portal: Portal, browser: Browser, cast: Cast, journeys: list[Page]
) -> None:
    page = _open(journeys, browser, portal, cast.alice)
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == CSRF_COOKIE)
    before = portal.services.controls.controls(cast.alice.ctx(), None).blocked
    answer = page.request.post(
        portal.url("/espace/controles/blocage"), form={"csrf_token": csrf, "action": "bloquer"}
    )
    assert answer.status == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "11 chiffres" in answer.text()
    assert portal.services.controls.controls(cast.alice.ctx(), None).blocked == before
