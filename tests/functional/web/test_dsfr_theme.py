"""The DSFR theme, for operators that are State bodies: off by default, served by Carnet itself
(never a CDN), refused at start when its files are not installed, and an unknown theme is a
settings error. The pages in that theme pass axe in Chromium when the DSFR is installed (its
terms of use must be accepted first, so a machine without it skips that test, saying why)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser

from carnet.app import Services, create_app
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.settings import Settings
from carnet.web.theme import ThemeUnavailableError
from tests.support.authn import PASSWORD
from tests.support.browser import check_accessibility, chromium, new_page, serve_portal
from tests.support.migrated_store import SqliteTemplate
from tests.support.record_pages import build_record

ELSEWHERE = re.compile(r"""(?:href|src)=["'](?:https?:)?//""")
INSTALLED = Settings.from_env({}).web_dsfr_dir


def _stub_dsfr(folder: Path) -> Path:
    (folder / "fonts").mkdir(parents=True)
    (folder / "dsfr.min.css").write_text(":root{--text-default-grey:#3a3a3a}", encoding="utf-8")
    (folder / "fonts" / "Marianne-Regular.woff2").write_bytes(b"wOF2stub")
    return folder


def test_the_dsfr_theme_is_served_by_carnet_and_nothing_comes_from_elsewhere(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    themed = settings.with_(web_theme="dsfr", web_dsfr_dir=_stub_dsfr(tmp_path / "dist"))
    with TestClient(create_app(themed, services), base_url="http://127.0.0.1") as client:
        home = client.get("/", headers={"accept": "text/html"})
        assert home.status_code == 200
        assert '<link rel="stylesheet" href="/static/dsfr/dsfr.min.css">' in home.text
        assert '<link rel="stylesheet" href="/static/carnet-dsfr.css">' in home.text
        assert 'class="fr-logo" lang="fr"' in home.text
        assert not ELSEWHERE.search(home.text)
        assert "default-src 'self'" in home.headers["content-security-policy"]
        assert client.get("/static/dsfr/dsfr.min.css").status_code == 200
        assert client.get("/static/dsfr/fonts/Marianne-Regular.woff2").content == b"wOF2stub"
        assert client.get("/static/carnet-dsfr.css").status_code == 200


def test_carnets_own_theme_is_the_default_and_serves_no_dsfr(
    settings: Settings, services: Services
) -> None:
    assert settings.web_theme == "carnet"
    with TestClient(create_app(settings, services), base_url="http://127.0.0.1") as client:
        home = client.get("/", headers={"accept": "text/html"})
        assert "/static/dsfr/" not in home.text and "fr-logo" not in home.text
        assert '<link rel="stylesheet" href="/static/carnet.css">' in home.text
        assert client.get("/static/dsfr/dsfr.min.css").status_code == 404


def test_the_dsfr_theme_without_its_files_refuses_to_start(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    missing = settings.with_(web_theme="dsfr", web_dsfr_dir=tmp_path / "absent")
    with pytest.raises(ThemeUnavailableError, match="web_dsfr_dir"):
        create_app(missing, services)


def test_an_unknown_theme_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="web_theme"):
        Settings.from_env({}, web_theme="gouv")
    assert Settings.from_env({}, web_theme=" DSFR ").web_theme == "dsfr"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.mark.slow  # a served portal and Chromium, six pages in light and dark
@pytest.mark.skipif(
    not (INSTALLED / "dsfr.min.css").is_file(),
    reason="@gouvfr/dsfr is not installed: its terms of use are accepted by the operator "
    "(`DSFR_ACCEPT_LICENSE=1 make dsfr`), never by the test suite",
)
def test_the_main_pages_in_the_dsfr_theme_have_no_axe_violation(
    tmp_path: Path, migrated_sqlite: SqliteTemplate, browser: Browser
) -> None:
    with serve_portal(tmp_path / "data", migrated_sqlite, web_theme="dsfr") as portal:
        services = portal.services
        world = build_record(services)
        account = services.accounts.create_person(
            "dsfr@exemple-sante.fr", PASSWORD, world.patient_id
        )
        cookie, csrf = services.sessions.open(account, second_factor=True)
        page = new_page(browser)
        for path in ("/", "/connexion", "/registre"):
            page.goto(portal.url(path))
            check_accessibility(page, f"dsfr{path.replace('/', '-') or '-home'}")
        page.context.add_cookies(
            [
                {"name": SESSION_COOKIE, "value": cookie, "url": portal.base},
                {"name": CSRF_COOKIE, "value": csrf, "url": portal.base},
            ]
        )
        for path in ("/espace", "/dossier", "/dossier/synthese"):
            page.goto(portal.url(path))
            check_accessibility(page, f"dsfr{path.replace('/', '-')}")
        page.context.close()
