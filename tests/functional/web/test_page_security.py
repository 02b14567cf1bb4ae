"""The pages' security rules over HTTP: the caller comes from the session, a POST needs its CSRF
token (field or header) and comes from Carnet's own origin, pages carry the strict CSP and
no-store, and redirects never leave the site."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.authn.routes import ROUTE_GUARDS
from tests.support.authn import Clock, account_service

BASE = "http://127.0.0.1"
_numbers = itertools.count(1)


@pytest.fixture
def portal(sqlite_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_services.settings, sqlite_services), base_url=BASE) as c:
        yield c


def _signed_in(portal: TestClient, services: Services, kind: str = "person") -> str:
    """Open a full session for a new account of ``kind``; returns its CSRF token."""
    accounts = account_service(services, Clock())
    n = next(_numbers)
    if kind == "person":
        # one person account per space: each sign-in its own Patient
        account = accounts.create_person(f"ana{n}@example.org", "correct horse battery", f"pat-{n}")
    else:
        account = accounts.create_professional(f"pro{n}", None, f"1000000000{n}", "physician")
    cookie, csrf = services.sessions.open(account, second_factor=True)
    portal.cookies.set(SESSION_COOKIE, cookie)
    portal.cookies.set(CSRF_COOKIE, csrf)
    return csrf


def test_page_post_without_its_csrf_token_is_refused_and_changes_nothing(
    portal: TestClient, sqlite_services: Services
) -> None:
    _signed_in(portal, sqlite_services)
    for data in ({}, {"csrf_token": "not-the-token"}):
        refused = portal.post("/deconnexion", data=data, follow_redirects=False)
        assert refused.status_code == 403
        assert "text/html" in refused.headers["content-type"]
        assert portal.get("/auth/me").status_code == 200  # still signed in


def test_page_post_from_another_site_is_refused_even_with_the_token(
    portal: TestClient, sqlite_services: Services
) -> None:
    csrf = _signed_in(portal, sqlite_services)
    refused = portal.post(
        "/deconnexion",
        data={"csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    assert portal.get("/auth/me").status_code == 200


def test_page_post_with_its_token_in_the_field_or_the_header_goes_through(
    portal: TestClient, sqlite_services: Services
) -> None:
    csrf = _signed_in(portal, sqlite_services)
    done = portal.post("/deconnexion", data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/"
    assert portal.get("/auth/me").status_code == 401

    csrf = _signed_in(portal, sqlite_services)
    done = portal.post("/deconnexion", headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    assert done.status_code == 303


def test_signed_in_page_without_a_session_redirects_to_sign_in_and_back(
    portal: TestClient,
) -> None:
    answer = portal.get("/espace?x=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/connexion?suivant=%2Fespace%3Fx%3D1"


def test_patient_page_refuses_a_professional_session(
    portal: TestClient, sqlite_services: Services
) -> None:
    _signed_in(portal, sqlite_services, kind="professional")
    assert portal.get("/espace").status_code == 403


def test_pages_carry_the_strict_csp_and_no_store(
    portal: TestClient, sqlite_services: Services
) -> None:
    _signed_in(portal, sqlite_services)
    page = portal.get("/espace")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert 'name="csrf_token"' in page.text  # the sign-out form carries it


def test_language_switch_never_redirects_off_the_site(portal: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        answer = portal.get("/langue/en", params={"suivant": target}, follow_redirects=False)
        assert answer.headers["location"] == "/"
    answer = portal.get("/langue/en", params={"suivant": "/espace"}, follow_redirects=False)
    assert answer.headers["location"] == "/espace"


def test_home_page_is_html_and_json_clients_keep_the_service_pointers(
    portal: TestClient,
) -> None:
    assert portal.get("/").headers["content-type"].startswith("text/html")
    json = portal.get("/", headers={"Accept": "application/json"})
    assert json.json() == {"service": "Carnet", "fhir": "/fhir/metadata"}


def test_every_page_route_has_an_access_rule(portal: TestClient) -> None:
    """Pages are left out of the OpenAPI description, so the authorisation matrix does not see
    them; the guard would refuse an unlisted one, and this says which."""
    # FastAPI keeps an included router whole in app.routes: walk into them (an isinstance scan
    # of the top level found no page at all, and so passed whatever the table said)
    contexts = iter_route_contexts(portal.app.routes)  # type: ignore[attr-defined]
    paths = {
        str(c.path)
        for c in contexts
        if getattr(getattr(c, "endpoint", None), "__module__", "").startswith("carnet.web")
    }
    assert "/connexion" in paths and "/espace" in paths  # the walk sees the pages
    missing = sorted(paths - set(ROUTE_GUARDS))
    assert not missing
