"""The patient's side of the research hub (issue 15): the page of the person's space lists the
projects whose released extracts included them (project, organisation, purpose, date) from the
extraction log, never another person's, never an unreleased extract; reading it is audited and
refused (and audited) for anyone but a person with a record."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from carnet.app import Services, build_services, create_app
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.hub.models import hub_permit
from carnet.hub.omop.models import hub_extraction, hub_extraction_person
from carnet.hub.omop.uses import ACTION, UsesRefusedError, projects_that_included_me
from tests.conftest import make_settings
from tests.support.audit_log import logged_events
from tests.support.authn import Clock, account_service
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate

TITLE, ORGANISATION, PURPOSE = "Diabète et saisons", "CHU de Nantes", "Étudier la glycémie"


@dataclass
class Setup:
    services: Services
    app_client: TestClient
    included: str
    other: str
    cookies: dict[str, tuple[str, str]]  # patient -> (session cookie, csrf)


def _patient(services: Services) -> str:
    body = {"resourceType": "Patient", "gender": "female", "birthDate": "1970-04-02"}
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _permit_row() -> dict[str, object]:
    at = datetime(2026, 1, 5, tzinfo=UTC)
    values: dict[str, object] = {c.name: "" for c in hub_permit.c if not c.nullable}
    values.update(
        permit_id="permit-uses",
        project_id="project-uses",
        state="active",
        title=TITLE,
        organisation=ORGANISATION,
        purpose=PURPOSE,
        duration_months=12,
        k_threshold=5,
        created_at=at,
    )
    return values


def _extraction(extraction_id: str, created_at: str, released: int) -> dict[str, object]:
    return {
        "id": extraction_id,
        "project_id": "project-uses",
        "permit_id": "permit-uses",
        "engine": "duckdb",
        "created_at": created_at,
        "output_hash": "0" * 64,
        "vocabulary_version": "none",
        "key_generation": 1,
        "row_counts": "{}",
        "excluded_opted_out": 0,
        "released": released,
    }


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[Setup]:
    """One store: two patients, one released extract including the first only, and an extract
    the risk report blocked (released 0) including both."""
    data_dir = tmp_path_factory.mktemp("hub-uses") / "data"
    migrated_sqlite.copy_into(data_dir)
    services = build_services(make_settings(data_dir), migrate=False)
    included, other = _patient(services), _patient(services)
    with writing(services.engine) as conn:
        conn.execute(insert(hub_permit).values(**_permit_row()))
        conn.execute(
            insert(hub_extraction).values(**_extraction("x-1", "2026-03-02T09:00:00.000000Z", 1))
        )
        conn.execute(
            insert(hub_extraction).values(**_extraction("x-2", "2026-04-01T09:00:00.000000Z", 0))
        )
        conn.execute(
            insert(hub_extraction_person),
            [
                {"extraction_id": "x-1", "patient_id": included, "person_id": 11},
                {"extraction_id": "x-2", "patient_id": included, "person_id": 11},
                {"extraction_id": "x-2", "patient_id": other, "person_id": 12},
            ],
        )
    accounts = account_service(services, Clock())
    cookies = {}
    for n, patient in enumerate((included, other)):
        account = accounts.create_person(f"p{n}@example.org", "correct horse battery", patient)
        cookies[patient] = services.sessions.open(account, second_factor=True)
    with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c:
        yield Setup(services, c, included, other, cookies)
    services.close()


def _page_of(setup: Setup, patient: str) -> str:
    cookie, csrf = setup.cookies[patient]
    setup.app_client.cookies.set(SESSION_COOKIE, cookie)
    setup.app_client.cookies.set(CSRF_COOKIE, csrf)
    try:
        page = setup.app_client.get("/espace/recherche")
    finally:
        setup.app_client.cookies.clear()
    assert page.status_code == 200
    return page.text


def test_patient_sees_project_organisation_purpose_and_date_of_extracts_that_included_them(
    setup: Setup,
) -> None:
    page = _page_of(setup, setup.included)
    for shown in (TITLE, ORGANISATION, "Étudier la glycémie", "2 mars 2026"):
        assert shown in page
    assert "1 avr. 2026" not in page and "1 avril 2026" not in page  # the blocked extract
    assert "11" not in page.split("<table")[-1].split("</table>")[0]  # no pseudonym


def test_another_patient_never_sees_an_extract_that_did_not_release_them(setup: Setup) -> None:
    page = _page_of(setup, setup.other)
    assert TITLE not in page and ORGANISATION not in page
    assert "Aucune extraction de recherche n'a inclus vos données." in page


def test_the_page_is_a_card_of_the_space_and_asks_for_sign_in(setup: Setup) -> None:
    cookie, csrf = setup.cookies[setup.included]
    setup.app_client.cookies.set(SESSION_COOKIE, cookie)
    setup.app_client.cookies.set(CSRF_COOKIE, csrf)
    try:
        assert "/espace/recherche" in setup.app_client.get("/espace").text
    finally:
        setup.app_client.cookies.clear()
    anonymous = setup.app_client.get("/espace/recherche", follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "connexion" in anonymous.headers["location"]


def test_reading_ones_uses_is_audited_and_a_professional_is_refused_and_audited(
    setup: Setup,
) -> None:
    me = RequestContext(
        Principal(Kind.PERSON, "acc-included", patient_id=setup.included), "acc-included"
    )
    assert [
        u.project_id
        for u in projects_that_included_me(setup.services.engine, setup.services.audit, me)
    ] == ["project-uses"]
    pro = RequestContext(Principal(Kind.PROFESSIONAL, "pro-1", rpps="10000000011"), "pro-1")
    with pytest.raises(UsesRefusedError):
        projects_that_included_me(setup.services.engine, setup.services.audit, pro)
    outcomes = {
        (e["outcome"], e["actor"]) for e in logged_events(setup.services) if e["action"] == ACTION
    }
    assert (200, "acc-included") in outcomes
    assert (403, "pro-1") in outcomes
