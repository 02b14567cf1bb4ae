"""The demo's ready-made accounts work end to end: the patient logs in with password and TOTP and
reads their own record but not another's; the representative reaches the child's record; the GP
is the médecin traitant; the app is registered; a second run changes nothing but the TOTP seeds."""

from __future__ import annotations

import re

import pyotp
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.demo.accounts import (
    APP_CLIENT_ID,
    DEMO_PASSWORD,
    PARENT_LOGIN,
    PATIENT_LOGIN,
    create_demo_accounts,
)
from carnet.demo.service import load_demo
from tests.support.caller import AS_LOCAL_OPERATOR

# Slow: the demo population is loaded.
pytestmark = pytest.mark.slow


def _create(services: Services) -> dict[str, str]:
    made = create_demo_accounts(
        services.fhir,
        services.accounts,
        services.clients,
        services.controls,
        services.record,
        issuer_url=services.settings.issuer_url,
        ctx=AS_LOCAL_OPERATOR,
    )
    return {a.role: f"{a.login} {a.detail}" for a in made}


def _login(client: TestClient, login: str, uri: str) -> dict[str, str]:
    r = client.post("/auth/login", json={"login": login, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    r = client.post("/auth/totp", json={"code": pyotp.parse_uri(uri).now()}, headers=csrf)
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def test_demo_accounts_end_to_end(sqlite_services: Services) -> None:
    services = sqlite_services
    load_demo(services.fhir, 40, ctx=AS_LOCAL_OPERATOR)
    made = _create(services)
    assert set(made) == {"patient", "representative", "physician", "nurse", "pharmacist", "app"}
    patient_id = re.search(r"Patient/([\w-]+),", made["patient"]).group(1)  # type: ignore[union-attr]
    child_id = re.search(r"parent of Patient/([\w-]+)", made["representative"]).group(1)  # type: ignore[union-attr]
    uri = re.search(r"(otpauth://[^\s;]+)", made["patient"]).group(1)  # type: ignore[union-attr]
    with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c:
        _login(c, PATIENT_LOGIN, uri)
        assert c.get(f"/fhir/Patient/{patient_id}").status_code == 200
        assert c.get(f"/fhir/Patient/{child_id}").status_code == 403
        controls = c.get("/access/controls").json()
        assert any(x["medecinTraitant"] for x in controls["care"])
    parent_uri = re.search(r"(otpauth://[^\s;]+)", made["representative"]).group(1)  # type: ignore[union-attr]
    with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c:
        _login(c, PARENT_LOGIN, parent_uri)
        assert c.get(f"/fhir/Patient/{child_id}").status_code == 200
        assert c.get(f"/fhir/Patient/{patient_id}").status_code == 403
    assert services.clients.get(APP_CLIENT_ID) is not None
    again = _create(services)
    assert set(again) == set(made)
    assert re.search(r"Patient/([\w-]+),", again["patient"]).group(1) == patient_id  # type: ignore[union-attr]
