"""The research hub's whole journey in a real browser (Chromium), each member signed in through
the OpenID Connect provider (the built-in development one): a researcher applies and submits, a
reviewer approves with conditions, the researcher opens the project, the operator extracts it on
DuckDB (the real extraction, in process, as ``carnet hub extract-permit`` does), the researcher
queries the extract in the page and asks for a table's release, the automatic control suppresses
a small cell, two independent checkers approve, the researcher publishes the results and the
public register shows them. Every page is checked with axe-core (0 WCAG 2.1 A/AA violation,
light and dark). The denials are tested over HTTP in test_hub_pages.py."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from carnet.authn.oidc import DEMO_PROFESSIONALS
from carnet.hub.omop.service import extract
from carnet.hub.omop.spec import ExtractionResult, ExtractionSpec
from carnet.hub.roles import OUTPUT_CHECKER, RESEARCHER, REVIEWER
from tests.support.browser import (
    Portal,
    browser_fixture,
    check_accessibility,
    new_page,
    portal_fixture,
)
from tests.support.hub import operator_ctx
from tests.support.hub_store import PersonSpec, add_person

# Slow: a served portal and Chromium, four members' sessions, axe on ten pages in two schemes.
pytestmark = pytest.mark.slow

portal = portal_fixture(dev_idp=True)
browser = browser_fixture()

# the development provider's professionals, each holding one hub role
MEMBERS = dict(
    zip(("researcher", "reviewer", "checker_1", "checker_2"), DEMO_PROFESSIONALS, strict=True)
)
ROLES = {
    "researcher": RESEARCHER,
    "reviewer": REVIEWER,
    "checker_1": OUTPUT_CHECKER,
    "checker_2": OUTPUT_CHECKER,
}
# record-level rows, shown in the page; the release's table counts them per sex
SQL = "SELECT gender_source_value AS sexe, year_of_birth AS naissance FROM person"
RESULTS_URL = "https://example.org/resultats-diabete"


@pytest.fixture(scope="module")
def members(portal: Portal) -> Iterator[dict[str, str]]:
    """The members' accounts (created before their first sign-in, as the operator would) and
    their roles; and a small store: 10 women and 3 men born in 1960."""
    services = portal.services
    accounts = {}
    for name, pro in MEMBERS.items():
        account = services.accounts.create_professional(
            f"rpps:{pro.rpps}", None, pro.rpps, pro.profession
        )
        services.hub.roles.grant(account, ROLES[name])  # type: ignore[union-attr]
        accounts[name] = account
    for index in range(13):
        sex = "female" if index < 10 else "male"
        add_person(services, PersonSpec(gender=sex, birth="1960-06-15"), index)
    yield accounts


def _sign_in(browser: Browser, portal: Portal, member: str) -> Page:
    page = new_page(browser)
    page.goto(portal.url("/auth/pro/login?next=/recherche"))
    page.get_by_role("button", name=re.compile(re.escape(MEMBERS[member].label))).click()
    page.wait_for_url(re.compile(r"/recherche$"))
    return page


def _fill_application(page: Page) -> None:
    fields = {
        "Titre du projet": "Diabète de type 2 et saisons",
        "Organisme responsable": "Université de Bordeaux",
        "Finalité du traitement": "Estimer l'effet des saisons sur la glycémie.",
        "Justification de l'intérêt public": "Mieux adapter le suivi en soins primaires.",
        "Base légale": "RGPD art. 9(2)(j) ; EHDS art. 53(1)(e)",
        "Tables et variables": "person",
        "Critères de population": "Adultes nés en 1960",
        "Début de la période": "2020-01-01",
        "Fin de la période": "2025-12-31",
        "Pourquoi ce niveau de désidentification": "Suivi longitudinal des mêmes personnes.",
        "Seuil k de la k-anonymat": "2",
    }
    for label, value in fields.items():
        page.get_by_label(re.compile("^" + re.escape(label))).fill(value)
    page.get_by_label(re.compile("^Traitement des dates")).select_option("year")


def test_the_whole_research_journey_in_the_browser(
    portal: Portal, browser: Browser, members: dict[str, str]
) -> None:
    hub = portal.services.hub
    assert hub is not None

    # the researcher applies, then submits: the three-month clock is shown
    researcher = _sign_in(browser, portal, "researcher")
    check_accessibility(researcher, "hub-home")
    researcher.get_by_role("link", name="Nouvelle demande").click()
    check_accessibility(researcher, "hub-application")
    _fill_application(researcher)
    researcher.get_by_role("button", name="Enregistrer le brouillon").click()
    expect(researcher.locator("main")).to_contain_text("brouillon")
    project_url = researcher.url
    researcher.get_by_role("button", name="Déposer la demande").click()
    expect(researcher.locator("main")).to_contain_text("Décision due le")
    check_accessibility(researcher, "hub-project-submitted")

    # the reviewer approves it with conditions and a validity
    reviewer = _sign_in(browser, portal, "reviewer")
    reviewer.get_by_role("link", name="Instruction").click()
    check_accessibility(reviewer, "hub-review-queue")
    reviewer.get_by_role("link", name="Diabète de type 2 et saisons").click()
    check_accessibility(reviewer, "hub-review")
    reviewer.get_by_label(re.compile("^Conditions de l'autorisation")).fill("Aucun croisement.")
    reviewer.get_by_label(re.compile("^Validité, en mois")).fill("12")
    reviewer.get_by_role("button", name="Accorder").click()
    expect(reviewer.locator("main")).to_contain_text("La demande est accordée.")

    # the researcher accepts the conditions; the operator extracts the project on DuckDB
    researcher.goto(project_url)
    expect(researcher.locator("main")).to_contain_text("Aucun croisement.")
    researcher.get_by_role("button", name="Accepter les conditions et ouvrir le projet").click()
    permit_id = project_url.rstrip("/").rsplit("/", 1)[-1]

    def real_extractor(spec: ExtractionSpec) -> ExtractionResult:
        return extract(portal.services, operator_ctx(), spec)

    result = hub.extracts.extract(operator_ctx(), permit_id, real_extractor, hub.extracts_dir)
    assert result.row_counts["person"] == 13 and not result.risk_report.release_blocked

    # the workspace: a query's rows in the page, then a release request of its table
    researcher.goto(project_url)
    researcher.get_by_label(re.compile("^Requête SQL")).fill(SQL)
    researcher.get_by_role("button", name="Exécuter").click()
    table = researcher.locator("#resultat table")
    expect(table).to_contain_text("13 lignes")
    check_accessibility(researcher, "hub-workspace")
    researcher.get_by_label(re.compile("^Colonne des lignes")).fill("sexe")
    researcher.get_by_role("button", name="Demander la diffusion").click()
    expect(researcher.locator("main")).to_contain_text("transmise aux vérificateurs")

    # two independent checkers: the small cell is shown suppressed, the other rounded
    for name in ("checker_1", "checker_2"):
        checker = _sign_in(browser, portal, name)
        checker.get_by_role("link", name="Contrôle des résultats").click()
        if name == "checker_1":
            check_accessibility(checker, "hub-check-queue")
        checker.get_by_role("link", name=re.compile("Tableau par sexe")).click()
        cells = checker.locator("table").first
        # 3 men: suppressed (7 or less); 10 women: released, rounded to 10
        female, male = cells.locator("tbody tr").nth(0), cells.locator("tbody tr").nth(1)
        expect(male).to_contain_text("effectif sous le seuil")
        expect(female).to_contain_text("10")
        expect(female).not_to_contain_text("supprimée")
        if name == "checker_1":
            check_accessibility(checker, "hub-check")
            with checker.expect_download() as download:
                checker.get_by_role("link", name=re.compile("relevé results.json")).click()
            assert download.value.suggested_filename == "results.json"
            with checker.expect_download() as folder:
                checker.get_by_role("link", name=re.compile("dossier pour SACRO-Viewer")).click()
            assert folder.value.suggested_filename.endswith(".zip")
        checker.get_by_label(re.compile("^Commentaire")).fill(f"Vu par {name}")
        checker.get_by_role("button", name="Approuver la diffusion").click()
        expect(checker.locator("main")).to_contain_text("Votre décision est enregistrée.")
        checker.context.close()

    # released: the researcher sees the controlled table and publishes the results
    researcher.goto(project_url)
    expect(researcher.locator("#diffusions ~ section").first).to_contain_text("diffusée")
    researcher.get_by_label(re.compile("^Adresse des résultats")).fill(RESULTS_URL)
    researcher.get_by_role("button", name="Publier").click()
    expect(researcher.locator("main")).to_contain_text("figure au registre")

    # the public register, without sign-in, shows the project running and its results
    visitor = new_page(browser)
    visitor.goto(portal.url("/registre"))
    row = visitor.locator("tbody tr", has_text="Diabète de type 2 et saisons")
    expect(row).to_contain_text("en cours")
    expect(row.get_by_role("link", name="résultats")).to_have_attribute("href", RESULTS_URL)
    for page in (researcher, reviewer, visitor):
        page.context.close()
