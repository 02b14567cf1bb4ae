"""A person uploads a document through the portal: a PDF, JPEG or PNG recognised by its bytes,
with a class and a date, within the size limit, with the form's CSRF token; anything else is
refused with a clear message and nothing is added."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, build_services, create_app
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from tests.conftest import make_settings
from tests.spec.helpers import patient
from tests.support.authn import Clock, account_service
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate
from tests.support.record_pages import PDF, PNG

LIMIT = 4096


@pytest.fixture
def portal(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> Iterator[tuple[TestClient, Services, str]]:
    migrated_sqlite.copy_into(tmp_path / "data")
    settings = make_settings(tmp_path / "data").with_(max_upload_bytes=LIMIT)
    services = build_services(settings, migrate=False)
    pid = services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    account = account_service(services, Clock()).create_person(
        "up@example.org", "correct horse battery", pid
    )
    cookie, csrf = services.sessions.open(account, second_factor=True)
    with TestClient(create_app(settings, services), base_url="http://127.0.0.1") as client:
        client.cookies.set(SESSION_COOKIE, cookie)
        client.cookies.set(CSRF_COOKIE, csrf)
        yield client, services, csrf
    services.close()


def _fields(csrf: str, **overrides: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "classe": "10",
        "date": "2025-02-03",
        "titre": "Compte rendu du genou",
        **overrides,
    }


def _count(client: TestClient) -> int:
    return client.get("/dossier").text.count('href="/dossier/documents/')


def test_person_uploads_a_pdf_with_class_and_date_and_sees_it_in_their_documents(
    portal: tuple[TestClient, Services, str],
) -> None:
    client, _services, csrf = portal
    done = client.post(
        "/dossier/depot",
        data=_fields(csrf),
        files={"fichier": ("genou.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    page = client.get(done.headers["location"])
    assert "Votre document est ajouté" in page.text and "Comptes rendus" in page.text
    assert "3 février 2025" in page.text
    content = client.get(done.headers["location"] + "/contenu")
    assert content.content == PDF and content.headers["content-type"] == "application/pdf"


def test_upload_trusts_the_bytes_not_the_declared_type(
    portal: tuple[TestClient, Services, str],
) -> None:
    client, _services, csrf = portal
    before = _count(client)
    html = b"<html><script>alert(1)</script></html>"
    refused = client.post(
        "/dossier/depot", data=_fields(csrf), files={"fichier": ("x.pdf", html, "application/pdf")}
    )
    assert refused.status_code == 400
    assert "ni un PDF, ni une image JPEG ou PNG" in refused.text
    assert 'aria-describedby="f-fichier-hint f-fichier-error"' in refused.text
    png = client.post(
        "/dossier/depot",
        data=_fields(csrf),
        files={"fichier": ("x.bin", PNG, "application/octet-stream")},
        follow_redirects=False,
    )
    assert png.status_code == 303
    assert client.get(png.headers["location"] + "/contenu").headers["content-type"] == "image/png"
    assert _count(client) == before + 1


def test_upload_refuses_a_future_date_an_unknown_class_and_a_file_over_the_limit(
    portal: tuple[TestClient, Services, str],
) -> None:
    client, _services, csrf = portal
    before = _count(client)
    bad = client.post(
        "/dossier/depot",
        data=_fields(csrf, date="2999-01-01", classe="99"),
        files={"fichier": ("big.pdf", PDF + b"0" * LIMIT, "application/pdf")},
    )
    assert bad.status_code == 400
    for field in ("date", "classe", "fichier"):
        assert f'id="f-{field}-error"' in bad.text
    assert _count(client) == before


def test_upload_without_its_csrf_token_is_refused(portal: tuple[TestClient, Services, str]) -> None:
    client, _services, csrf = portal
    before = _count(client)
    fields = _fields(csrf)
    del fields["csrf_token"]
    refused = client.post(
        "/dossier/depot", data=fields, files={"fichier": ("a.pdf", PDF, "application/pdf")}
    )
    assert refused.status_code == 403
    assert _count(client) == before


def test_a_body_far_over_the_upload_limit_is_cut_off_before_the_page_runs(
    portal: tuple[TestClient, Services, str],
) -> None:
    client, _services, csrf = portal
    huge = PDF + b"0" * (LIMIT + 20000)
    answer = client.post(
        "/dossier/depot", data=_fields(csrf), files={"fichier": ("h.pdf", huge, "application/pdf")}
    )
    assert answer.status_code == 413
