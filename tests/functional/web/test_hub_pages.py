"""The research hub's pages over HTTP (the browser journey is test_hub_journey_browser.py): the
denials that guard them, the forms that store nothing when wrong, and each release's ACRO
results.json written beside its output, read back with ACRO's own reader.

One store, one app and one active project with a pending release for the module; each test signs
its callers in with sessions of their own.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import text

from carnet.app import Services, create_app
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.caller import Kind, Principal, RequestContext
from carnet.hub.application import Application
from carnet.hub.disclosure.acro_record import RESULTS_FILE
from carnet.hub.disclosure.tables import TableRequest
from carnet.hub.errors import HubError
from carnet.hub.releases import Release
from carnet.hub.roles import OUTPUT_CHECKER, RESEARCHER, REVIEWER
from carnet.web.i18n import LANGUAGE_COOKIE
from carnet.web.security import CSRF_FIELD
from tests.support.hub import application, fake_extractor, operator_ctx
from tests.support.module_services import module_services_fixture

BASE = "http://127.0.0.1"
shared = module_services_fixture()

# account name -> (RPPS, hub roles); "teammate" is in the applicant's team and also a reviewer
# and a checker, so the committee's and the checkers' independence rules have someone to refuse.
ACCOUNTS = {
    "applicant": ("10000000102", (RESEARCHER,)),
    "teammate": ("10000000110", (RESEARCHER, REVIEWER, OUTPUT_CHECKER)),
    "other_researcher": ("10000000128", (RESEARCHER,)),
    "reviewer": ("10000000136", (REVIEWER,)),
    "checker_1": ("10000000144", (OUTPUT_CHECKER,)),
    "checker_2": ("10000000151", (OUTPUT_CHECKER,)),
    "no_role": ("10000000169", ()),
}
SQL = "SELECT * FROM person"


@dataclass
class Hub:
    services: Services
    client_of: dict[str, tuple[TestClient, str]]
    accounts: dict[str, str]
    permit_id: str
    release_id: str

    def ctx(self, name: str) -> RequestContext:
        principal = Principal(Kind.PROFESSIONAL, self.accounts[name], rpps=ACCOUNTS[name][0])
        return RequestContext(principal, principal.subject, purpose="research")


def _signed_in(services: Services, app: object, account: str) -> tuple[TestClient, str]:
    client = TestClient(app, base_url=BASE)  # type: ignore[arg-type]
    cookie, csrf = services.sessions.open(account, second_factor=True)
    client.cookies.set(SESSION_COOKIE, cookie)
    client.cookies.set(CSRF_COOKIE, csrf)
    return client, csrf


@pytest.fixture(scope="module")
def hub(shared: Services) -> Iterator[Hub]:
    services, roles = shared, shared.hub.roles  # type: ignore[union-attr]
    accounts = {}
    for name, (rpps, granted) in ACCOUNTS.items():
        accounts[name] = services.accounts.create_professional(
            f"rpps:{rpps}", None, rpps, "physician"
        )
        for role in granted:
            roles.grant(accounts[name], role)
    app = create_app(services.settings, services)
    clients = {name: _signed_in(services, app, account) for name, account in accounts.items()}
    built = Hub(services, clients, accounts, "", "")
    permits = services.hub.permits  # type: ignore[union-attr]
    body = application(team=[accounts["teammate"]])
    permit = permits.apply(built.ctx("applicant"), Application.from_json(body))
    built.permit_id = permit.permit_id
    permits.step(built.ctx("applicant"), permit.permit_id, "submit")
    permits.step(built.ctx("reviewer"), permit.permit_id, "review")
    permits.step(built.ctx("reviewer"), permit.permit_id, "approve")
    permits.step(built.ctx("applicant"), permit.permit_id, "activate")
    extracts_dir = services.hub.extracts_dir  # type: ignore[union-attr]
    services.hub.extracts.extract(  # type: ignore[union-attr]
        operator_ctx(), permit.permit_id, fake_extractor, extracts_dir
    )
    release = services.hub.releases.request(  # type: ignore[union-attr]
        built.ctx("applicant"),
        permit.permit_id,
        TableRequest(SQL, "gender_source_value", "year_of_birth"),
    )
    built.release_id = release.release_id
    yield built


def _post(hub: Hub, who: str, path: str, form: dict[str, str], *, csrf: bool = True) -> Response:
    client, token = hub.client_of[who]
    data = {CSRF_FIELD: token, **form} if csrf else form
    return client.post(path, data=data, follow_redirects=False)


def _get(hub: Hub, who: str, path: str) -> Response:
    return hub.client_of[who][0].get(path, follow_redirects=False)


def _audited(hub: Hub, who: str, action: str) -> list[int]:
    """The outcomes of the audit events of ``who`` taking ``action`` (ids only in them)."""
    hub.services.audit.flush()
    with hub.services.engine.connect() as conn:
        bodies = [row[0] for row in conn.execute(text("SELECT body FROM audit_event"))]
    events = [orjson.loads(body) for body in bodies]
    actor = hub.accounts[who]
    return [e["outcome"] for e in events if e["actor"] == actor and e["action"] == action]


def _release(hub: Hub) -> Release:
    return hub.services.hub.releases.get(hub.release_id)  # type: ignore[union-attr]


def test_a_researcher_cannot_open_another_projects_workspace(hub: Hub) -> None:
    project = f"/recherche/projets/{hub.permit_id}"
    assert _get(hub, "applicant", project).status_code == 200
    assert _get(hub, "other_researcher", project).status_code == 404
    query = _post(hub, "other_researcher", f"{project}/requete", {"sql": SQL})
    assert query.status_code == 404
    assert "MRN" not in query.text and "gender_source_value" not in query.text
    asked = _post(hub, "other_researcher", f"{project}/diffusions", {"release_sql": SQL})
    assert asked.status_code == 404
    assert _audited(hub, "other_researcher", "permit-read") == [404, 404, 404]
    missing = _get(hub, "other_researcher", "/recherche/projets/no-such-permit")
    assert missing.text == _get(hub, "other_researcher", project).text.replace(
        hub.permit_id, "no-such-permit"
    )


def test_the_team_queries_its_extract_in_the_page_and_the_rows_never_become_a_link(
    hub: Hub,
) -> None:
    sql = "SELECT gender_source_value, count(*) AS n FROM person GROUP BY 1 ORDER BY 1"
    answer = _post(hub, "teammate", f"/recherche/projets/{hub.permit_id}/requete", {"sql": sql})
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert "<td>F</td><td>30</td>" in answer.text.replace("\n", "").replace(" ", "")
    refused = _post(
        hub, "teammate", f"/recherche/projets/{hub.permit_id}/requete", {"sql": "DROP TABLE person"}
    )
    assert refused.status_code == 400


def test_a_reviewer_cannot_decide_their_own_application(hub: Hub) -> None:
    permits = hub.services.hub.permits  # type: ignore[union-attr]
    own = permits.apply(
        hub.ctx("applicant"),
        Application.from_json(
            application(team=[hub.accounts["teammate"]], title="Projet de l'équipe")
        ),
    )
    permits.step(hub.ctx("applicant"), own.permit_id, "submit")
    page = _get(hub, "teammate", f"/recherche/instruction/{own.permit_id}")
    assert page.status_code == 200
    assert "un autre membre du comité décide" in page.text
    tried = _post(
        hub,
        "teammate",
        f"/recherche/instruction/{own.permit_id}",
        {"decision": "approve", "valid_months": "12"},
    )
    assert tried.status_code == 403
    assert "un autre membre du comité décide" in tried.text
    assert permits.get(own.permit_id).state == "submitted"
    assert 403 in _audited(hub, "teammate", "permit-review")


def test_a_checker_cannot_approve_a_request_of_their_own_project(hub: Hub) -> None:
    before = _release(hub).approvals
    tried = _post(hub, "teammate", f"/recherche/controle/{hub.release_id}", {"decision": "approve"})
    assert tried.status_code == 403
    assert "deux autres vérificateurs" in tried.text
    assert _release(hub).approvals == before
    assert 403 in _audited(hub, "teammate", "release-approve")


def test_a_checker_cannot_approve_twice(hub: Hub) -> None:
    path = f"/recherche/controle/{hub.release_id}"
    first = _post(hub, "checker_1", path, {"decision": "approve", "comment": "Rien à signaler"})
    assert first.status_code == 303
    again = _post(hub, "checker_1", path, {"decision": "approve"})
    assert again.status_code == 409
    assert "déjà rendu votre décision" in again.text
    assert _audited(hub, "checker_1", "release-approve") == [200, 409]
    assert _release(hub).approvals == (hub.accounts["checker_1"],)
    assert _release(hub).state == "pending"


def test_a_hub_form_without_its_csrf_token_is_refused_and_changes_nothing(hub: Hub) -> None:
    permits = hub.services.hub.permits  # type: ignore[union-attr]
    before = len(permits.visible_to(hub.ctx("applicant")))
    form = {"title": "Sans jeton", "decision": "approve"}
    assert _post(hub, "applicant", "/recherche/demande", form, csrf=False).status_code == 403
    refused = _post(hub, "checker_2", f"/recherche/controle/{hub.release_id}", form, csrf=False)
    assert refused.status_code == 403
    assert len(permits.visible_to(hub.ctx("applicant"))) == before
    assert hub.accounts["checker_2"] not in _release(hub).approvals


def test_an_application_with_a_wrong_field_is_shown_again_and_stores_nothing(hub: Hub) -> None:
    permits = hub.services.hub.permits  # type: ignore[union-attr]
    before = len(permits.visible_to(hub.ctx("applicant")))
    form = {"title": "Incomplet", "variables": "patients: nom", "duration_months": "99"}
    answer = _post(hub, "applicant", "/recherche/demande", form)
    assert answer.status_code == 400
    assert 'aria-invalid="true"' in answer.text and "Incomplet" in answer.text
    assert len(permits.visible_to(hub.ctx("applicant"))) == before


def test_only_the_hub_roles_open_the_hub_pages(hub: Hub) -> None:
    assert _get(hub, "no_role", "/recherche").status_code == 403
    assert _get(hub, "applicant", "/recherche/instruction").status_code == 403
    assert _get(hub, "applicant", "/recherche/controle").status_code == 403
    assert _get(hub, "reviewer", "/recherche/demande").status_code == 403
    assert _get(hub, "checker_1", f"/recherche/instruction/{hub.permit_id}").status_code == 403


def test_a_release_may_use_a_stricter_profile_never_a_laxer_one(hub: Hub) -> None:
    releases = hub.services.hub.releases  # type: ignore[union-attr]
    request = TableRequest(SQL, "gender_source_value")
    stricter = releases.request(hub.ctx("applicant"), hub.permit_id, request, "acro-default")
    assert stricter.profile == "acro-default"
    permits = hub.services.hub.permits  # type: ignore[union-attr]
    strict = permits.apply(
        hub.ctx("applicant"),
        Application.from_json(application(disclosureProfile="acro-default", title="Strict")),
    )
    for who, step in (
        ("applicant", "submit"),
        ("reviewer", "review"),
        ("reviewer", "approve"),
        ("applicant", "activate"),
    ):
        permits.step(hub.ctx(who), strict.permit_id, step)
    extracts_dir = hub.services.hub.extracts_dir  # type: ignore[union-attr]
    hub.services.hub.extracts.extract(  # type: ignore[union-attr]
        operator_ctx(), strict.permit_id, fake_extractor, extracts_dir
    )
    with pytest.raises(HubError) as refused:
        releases.request(hub.ctx("applicant"), strict.permit_id, request, "opensafely")
    assert refused.value.status == 400


def test_each_release_writes_its_results_json_beside_its_output_for_acro_and_sacro(
    hub: Hub, tmp_path: Path
) -> None:
    # ACRO is a declared dev dependency: missing, this fails rather than skips. Imported here,
    # not at the top, since its package pulls in statsmodels, SciPy and matplotlib.
    acro_record = importlib.import_module("acro.record")
    releases = hub.services.hub.releases  # type: ignore[union-attr]
    release = releases.request(
        hub.ctx("applicant"),
        hub.permit_id,
        TableRequest(SQL, "gender_source_value", "year_of_birth"),
    )
    folder = releases.bundle_dir(release)
    assert folder is not None
    releases.review(hub.ctx("checker_2"), release.release_id, "approve", "Cases vérifiées")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [RESULTS_FILE, f"{release.release_id}.csv"]
    )
    records = acro_record.load_records(str(folder))  # ACRO's own reader
    loaded = records.get(release.release_id)
    assert loaded.status == "review" and loaded.output_type == "table"
    assert loaded.comments == [f"{hub.accounts['checker_2']}: approve - Cases vérifiées"]
    (table,) = loaded.output
    # the released cells only: F/1950 (a true 7) suppressed, the others rounded to 5, totals
    # recomputed from what is released
    assert table.columns.tolist() == ["gender_source_value", "1950", "1960", "total"]
    assert table["gender_source_value"].tolist() == ["F", "M", "total"]
    assert table["1960"].tolist() == [25.0, 10.0, 35.0]
    assert table["1950"].isna().tolist() == [True, False, False]
    assert loaded.outcome.to_dict()["1950"]["F"].startswith("MinimumThresholdCheck")
    offered = _get(hub, "checker_1", f"/recherche/controle/{release.release_id}/results.json")
    assert offered.status_code == 200
    assert offered.headers["content-disposition"] == 'attachment; filename="results.json"'
    assert offered.json() == json.loads((Path(folder) / RESULTS_FILE).read_text())
    # the same folder as a zip, for a checker to open in SACRO-Viewer
    zipped = _get(hub, "checker_1", f"/recherche/controle/{release.release_id}/sacro.zip")
    assert zipped.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        archive.extractall(tmp_path)
    unzipped = acro_record.load_records(str(tmp_path / release.release_id))
    assert unzipped.get(release.release_id).comments == loaded.comments


def test_the_hub_pages_speak_english_when_asked(hub: Hub) -> None:
    client = hub.client_of["checker_2"][0]
    client.cookies.set(LANGUAGE_COOKIE, "en")
    try:
        page = client.get(f"/recherche/controle/{hub.release_id}")
        assert page.status_code == 200
        assert (
            "Checking a release request" in page.text and "count under the threshold" in page.text
        )
    finally:
        client.cookies.delete(LANGUAGE_COOKIE)


def test_a_results_address_that_is_not_a_plain_https_url_is_refused_and_stores_nothing(
    hub: Hub,
) -> None:
    path = f"/recherche/projets/{hub.permit_id}/resultats"
    permits = hub.services.hub.permits  # type: ignore[union-attr]
    for hostile in (
        "https://hal.science/x\r\nSet-Cookie: carnet_session=stolen",
        'https://hal.science/x"><script>alert(1)</script>',
        "https:// hal.science/x",
        "https://",
        "https:///etc/passwd",
        "http://hal.science/x",
        "javascript:alert(1)//https://",
    ):
        answer = _post(hub, "applicant", path, {"results_url": hostile})
        assert answer.status_code == 303  # the page says why (flash), nothing stored
        assert permits.get(hub.permit_id).results_url is None, hostile


def test_the_project_query_refuses_sql_that_writes_or_leaves_the_extract(hub: Hub) -> None:
    extracts = hub.services.hub.extracts  # type: ignore[union-attr]
    extract = extracts.latest_extract(hub.permit_id)[0]
    beside = extract.parent / "beside-the-extract.csv"  # a file the workspace must not reach
    beside.write_text("secret\nMRN-beside\n")
    outside = extract.parent / "written-by-a-query.csv"
    path = f"/recherche/projets/{hub.permit_id}/requete"
    for hostile in (
        f"ATTACH '{extract.parent / 'other.duckdb'}' AS other",
        f"COPY person TO '{outside}'",
        f"SELECT * FROM read_csv('{beside}')",
        f"SELECT * FROM '{beside}'",
        "PRAGMA database_list",
        "SELECT 1; DROP TABLE person",
        "SET enable_external_access = true",
    ):
        answer = _post(hub, "applicant", path, {"sql": hostile})
        assert answer.status_code == 400, hostile
        assert "une seule instruction SELECT" in answer.text
        assert "MRN-beside" not in answer.text
    assert not outside.exists()
    named = _post(hub, "applicant", path, {"sql": "SELECT '<b>x</b>' AS \"<script>y</script>\""})
    assert named.status_code == 200  # values and column names are shown as text
    assert "<script>y" not in named.text and "<b>x" not in named.text
    assert _post(hub, "applicant", path, {"sql": "SELECT 1 -- " + "x" * 30_000}).status_code == 413


def test_no_one_but_the_applicant_takes_a_projects_steps_or_names_its_results(hub: Hub) -> None:
    project = f"/recherche/projets/{hub.permit_id}"
    permits = hub.services.hub.permits  # type: ignore[union-attr]
    before = permits.get(hub.permit_id)
    for who in ("other_researcher", "teammate", "reviewer", "checker_1"):
        for step in ("soumettre", "activer", "../../etapes/activer"):
            answer = _post(hub, who, f"{project}/etapes/{step}", {})
            assert answer.status_code in (303, 404), (who, step)  # refused, the page says so
        named = _post(hub, who, f"{project}/resultats", {"results_url": "https://hal.science/x"})
        assert named.status_code in (303, 404)
    after = permits.get(hub.permit_id)
    assert (after.state, after.results_url) == (before.state, before.results_url)


APPLICATION_FORM = {
    "title": "Envoyée deux fois",
    "organisation": "Université de Bordeaux",
    "purpose": "Estimer l'incidence de l'insuffisance rénale.",
    "public_interest": "Améliorer le dépistage.",
    "legal_basis": "RGPD art. 9(2)(j)",
    "team": "",
    "datasets": "carnet-record",
    "variables": "person: year_of_birth",
    "population": "Adultes",
    "period_start": "2020-01-01",
    "period_end": "2025-12-31",
    "duration_months": "24",
    "deidentification": "pseudonymised",
    "deidentification_reason": "Suivi longitudinal.",
    "dates": "shift",
    "k_threshold": "5",
    "disclosure_profile": "opensafely",
}


def _submission_of(page: str) -> str:
    found = re.search(r'name="envoi" value="([0-9a-f]{32})"', page)
    assert found is not None, "the form carries its own submission id"
    return found.group(1)


def _titled(hub: Hub, who: str, title: str) -> list[str]:
    permits = hub.services.hub.permits  # type: ignore[union-attr]
    return [p.permit_id for p in permits.visible_to(hub.ctx(who)) if p.application.title == title]


def test_an_application_form_sent_twice_makes_one_application(hub: Hub) -> None:
    """A double click or a replayed POST of the same application form stores one draft: both
    answers lead to it."""
    envoi = _submission_of(_get(hub, "applicant", "/recherche/demande").text)
    form = {**APPLICATION_FORM, "envoi": envoi}
    answers = [_post(hub, "applicant", "/recherche/demande", form) for _ in range(2)]
    assert [a.status_code for a in answers] == [303, 303]
    (stored,) = _titled(hub, "applicant", "Envoyée deux fois")
    assert {a.headers["location"] for a in answers} == {f"/recherche/projets/{stored}"}
    assert envoi not in _get(hub, "applicant", "/recherche/demande").text  # a new form, a new id


def test_a_submission_id_sent_by_another_researcher_makes_their_own_application(hub: Hub) -> None:
    """The submission id only finds the sender's own application: another researcher replaying
    it never reaches the first one's project."""
    envoi = _submission_of(_get(hub, "applicant", "/recherche/demande").text)
    form = {**APPLICATION_FORM, "title": "Le même envoi", "envoi": envoi}
    first = _post(hub, "applicant", "/recherche/demande", form)
    other = _post(hub, "other_researcher", "/recherche/demande", form)
    assert first.status_code == other.status_code == 303
    assert first.headers["location"] != other.headers["location"]
    assert len(_titled(hub, "applicant", "Le même envoi")) == 1
    assert len(_titled(hub, "other_researcher", "Le même envoi")) == 1


def test_a_release_form_sent_twice_makes_one_release_request(hub: Hub) -> None:
    """A release request posted twice with the same form is controlled and queued once."""
    project = f"/recherche/projets/{hub.permit_id}"
    envoi = _submission_of(_get(hub, "applicant", project).text)
    releases = hub.services.hub.releases  # type: ignore[union-attr]
    before = len(releases.for_permit(hub.ctx("applicant"), hub.permit_id))
    form = {
        "release_sql": SQL,
        "rows": "gender_source_value",
        "statistic": "count",
        "profile": "opensafely",
        "envoi": envoi,
    }
    answers = [_post(hub, "applicant", f"{project}/diffusions", form) for _ in range(2)]
    assert [a.status_code for a in answers] == [303, 303]
    assert len(releases.for_permit(hub.ctx("applicant"), hub.permit_id)) == before + 1
    assert envoi not in _get(hub, "applicant", project).text  # a new form, a new id
