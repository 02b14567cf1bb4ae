"""The demo's printed logins work through the portal's own pages: the patient signs in at
/connexion with the printed password and the code of the printed TOTP secret and reaches /espace
(their record, not another's); the parent reaches the child's space; each printed professional
signs in at the development identity provider and reaches /pro, holding the printed hub role; the
app is registered; a second run keeps the accounts and gives new secrets that work."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, build_services, create_app
from carnet.authn.oidc import ProfessionalLogin
from carnet.demo.accounts import (
    APP_CLIENT_ID,
    CODE_COMMAND,
    HUB_ROLES,
    PARENT_LOGIN,
    PATIENT_LOGIN,
    DemoAccount,
    create_demo_accounts,
)
from carnet.demo.cli import print_portal_and_logins
from carnet.demo.code import current_code
from carnet.demo.service import load_demo
from carnet.settings import Settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate

# Slow: the demo population is loaded (once for the module) and passwords are hashed for real.
pytestmark = pytest.mark.slow

PORTAL = "http://127.0.0.1"


@dataclass
class Demo:
    services: Services
    accounts: dict[str, DemoAccount]  # by role, as the last run printed them

    def client(self) -> TestClient:
        return TestClient(create_app(self.services.settings, self.services), base_url=PORTAL)

    def create(self) -> dict[str, DemoAccount]:
        s = self.services
        made = create_demo_accounts(
            s.fhir,
            s.accounts,
            s.clients,
            s.controls,
            s.record,
            issuer_url=s.settings.issuer_url,
            roles=s.hub.roles if s.hub is not None else None,
            ctx=AS_LOCAL_OPERATOR,
        )
        self.accounts = {a.role: a for a in made}
        return self.accounts


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[Demo]:
    data_dir: Path = tmp_path_factory.mktemp("demo-store") / "data"
    migrated_sqlite.copy_into(data_dir)
    settings = Settings.from_env({}, data_dir=str(data_dir), public_base_url=PORTAL, dev_idp="true")
    built = build_services(settings, migrate=False)
    # The relying party reaches the in-process development provider through the app itself: the
    # real OIDC flow (discovery, code, token, JWKS) without a socket.
    provider = TestClient(create_app(settings, built), base_url=settings.issuer_url)
    services = replace(
        built,
        pro_login=ProfessionalLogin(settings, provider, built.tickets, built.audit),
    )
    load_demo(services.fhir, 40, ctx=AS_LOCAL_OPERATOR)
    made = Demo(services, {})
    made.create()
    yield made
    provider.close()
    built.close()


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _sign_in_person(client: TestClient, account: DemoAccount) -> str:
    """Sign in through /connexion and /connexion/code as printed; returns where it landed."""
    assert account.password and account.totp_secret
    assert account.sign_in == f"{PORTAL}/connexion"
    assert f"password {account.password}" in account.detail
    assert f"{CODE_COMMAND} {account.totp_secret}" in account.detail
    form = client.get("/connexion?suivant=/espace")
    assert form.status_code == 200
    data = {
        "csrf_token": _token(form.text),
        "login": account.login,
        "password": account.password,
        "suivant": "/espace",
    }
    to_code = client.post("/connexion", data=data, follow_redirects=False)
    assert to_code.status_code == 303, to_code.text
    code_page = client.get(to_code.headers["location"])
    assert code_page.status_code == 200
    done = client.post(
        "/connexion/code",
        data={
            "csrf_token": _token(code_page.text),
            "code": current_code(account.totp_secret),
            "suivant": "/espace",
        },
    )
    assert done.status_code == 200, done.text
    return done.url.path


def test_the_printed_patient_login_reaches_their_space_and_their_record_only(
    demo: Demo,
) -> None:
    patient = demo.accounts["patient"]
    child = demo.accounts["representative"].represented_id
    assert patient.login == PATIENT_LOGIN
    with demo.client() as c:
        assert _sign_in_person(c, patient) == "/espace"
        assert c.get(f"/fhir/Patient/{patient.patient_id}").status_code == 200
        assert c.get(f"/fhir/Patient/{child}").status_code == 403
        controls = c.get("/access/controls").json()
        assert any(x["medecinTraitant"] for x in controls["care"])


def test_the_printed_parent_login_reaches_the_child_space(demo: Demo) -> None:
    parent = demo.accounts["representative"]
    assert parent.login == PARENT_LOGIN and parent.represented_id
    assert f"parent of Patient/{parent.represented_id}" in parent.detail
    with demo.client() as c:
        assert _sign_in_person(c, parent) == "/espace"
        assert c.get(f"/espace/representants/{parent.represented_id}").status_code == 200
        assert c.get(f"/fhir/Patient/{parent.represented_id}").status_code == 200
        assert c.get(f"/fhir/Patient/{demo.accounts['patient'].patient_id}").status_code == 403


def _hidden_fields(page: str) -> dict[str, str]:
    return {
        name: unescape(value)
        for name, value in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }


@pytest.mark.parametrize("role", ["physician", "nurse", "pharmacist"])
def test_each_printed_professional_signs_in_at_the_development_provider_and_reaches_pro(
    demo: Demo, role: str
) -> None:
    pro = demo.accounts[role]
    rpps = pro.login.removeprefix("RPPS ")
    assert pro.sign_in == f"{PORTAL}/auth/pro/login?next=/pro" and pro.sign_in in pro.detail
    with demo.client() as c:
        picker = c.get(pro.sign_in)  # -> the development provider's page
        assert picker.status_code == 200 and f"RPPS {rpps}" in picker.text
        fields = _hidden_fields(picker.text)
        assert fields, picker.text
        landed = c.post("/dev-idp/authorize", data={**fields, "rpps": rpps})
        assert landed.status_code == 200, landed.text
        assert landed.url.path == "/pro"
        assert c.get("/hub/permits").status_code == 200  # the hub's API, same session
    services = demo.services
    assert services.hub is not None and pro.account_id
    assert f"hub role {HUB_ROLES[role]}" in pro.detail
    assert services.hub.roles.holds(pro.account_id, HUB_ROLES[role])


def test_the_printout_gives_the_portal_address_and_every_login(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    print_portal_and_logins(demo.services.settings.issuer_url, list(demo.accounts.values()))
    printed = capsys.readouterr().out
    assert f"portal: {PORTAL}/" in printed
    for account in demo.accounts.values():
        assert account.login in printed
    assert demo.services.clients.get(APP_CLIENT_ID) is not None


def test_a_second_run_keeps_the_accounts_and_its_new_secrets_sign_in(demo: Demo) -> None:
    before = dict(demo.accounts)
    again = demo.create()
    assert set(again) == {"patient", "representative", "physician", "nurse", "pharmacist", "app"}
    for role in ("patient", "representative"):
        assert again[role].patient_id == before[role].patient_id
        assert again[role].account_id == before[role].account_id
        assert again[role].totp_secret != before[role].totp_secret
    assert again["representative"].represented_id == before["representative"].represented_id
    with demo.client() as c:
        assert _sign_in_person(c, again["patient"]) == "/espace"
