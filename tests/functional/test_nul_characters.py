"""A NUL character anywhere a request can carry one (path, query, conditional header, JSON body,
bundle entry, OAuth form) is a 400, never a 500: PostgreSQL refuses NUL in text, which SQLite
accepts, so the SQLite-only fuzz run (test_openapi_fuzz.py) could not see it. Both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carnet.app import Services, create_app
from carnet.caller import Kind, Principal
from carnet.fhir.models import resource
from tests.spec.helpers import FHIR_JSON, observation, patient
from tests.support.auth import bearer
from tests.support.caller import AS_LOCAL_OPERATOR

# Both backends: PostgreSQL refuses NUL in text where SQLite keeps it.
pytestmark = pytest.mark.both_backends


@pytest.fixture
def world(services: Services) -> Iterator[tuple[TestClient, str, dict[str, str], dict[str, str]]]:
    pid = services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    operator = {**bearer(services), **FHIR_JSON}
    person = bearer(services, Principal(Kind.PERSON, "acct-nul", patient_id=pid))
    with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c:
        yield c, pid, operator, person


URLS = [
    "/fhir/Patient/a%00b",
    "/fhir/Patient/%00/_history",
    "/fhir/Patient/%00/$everything",
    "/fhir/Patient?_id=a%00b",
    "/fhir/Patient?identifier=a%00b|c",
    "/fhir/Observation?code=%00",
    "/fhir/Observation?subject=Patient/%00",
    "/fhir/Observation?value-quantity=5||%00",
    "/fhir/Patient?_has:Observation:subject:code=%00",
    "/fhir/AuditEvent?patient=%00",
    "/fhir/$export-status/a%00b",
    "/fhir/$import-status/a%00b",
    "/identity/queue?state=%00",
    "/oauth/authorize?response_type=code&client_id=a%00b&redirect_uri=http://x&scope=openid"
    "&state=s&code_challenge=x&code_challenge_method=S256",
    "/auth/pro/callback?code=a%00b&state=s",
]


def _count(services: Services) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(resource)).scalar_one())


def _refused(r: Any) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def test_a_nul_in_the_url_is_a_400(world: Any) -> None:
    client, _, operator, _ = world
    for url in URLS:
        r = client.get(url, headers=operator)
        assert r.status_code == 400, (url, r.status_code, r.text)
        assert r.json()["resourceType"] == "OperationOutcome", url


def test_a_nul_in_a_body_header_or_bundle_is_a_400(services: Services, world: Any) -> None:
    client, pid, operator, _ = world
    before = _count(services)
    for body in (
        {**patient(), "name": [{"family": "a\u0000b"}]},
        {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "a\u0000"}]},
        observation(pid, code="a\u0000"),
    ):
        _refused(client.post(f"/fhir/{body['resourceType']}", json=body, headers=operator))
    conditional = {**operator, "If-None-Exist": "identifier=a%00b"}
    _refused(client.post("/fhir/Patient", json=patient(), headers=conditional))
    for entry in (
        {"request": {"method": "GET", "url": "Patient?name=%00"}},
        {"request": {"method": "GET", "url": "Observation?code=%00"}},
        {"resource": patient(), "request": {"method": "POST", "url": "Patient", "ifNoneExist": "_id=%00"}},
    ):  # fmt: skip
        for kind in ("transaction", "batch"):
            bundle = {"resourceType": "Bundle", "type": kind, "entry": [entry]}
            r = client.post("/fhir", json=bundle, headers=operator)
            assert r.status_code < 500, (kind, entry, r.text)
            if kind == "transaction":
                _refused(r)
    assert _count(services) == before  # nothing written


def test_a_nul_in_an_oauth_form_is_refused(world: Any) -> None:
    client, _, _, _ = world
    for form in (
        {"grant_type": "client_credentials", "client_id": "a\u0000b", "client_secret": "x"},
        {"grant_type": "refresh_token", "client_id": "a", "refresh_token": "x\u0000"},
    ):
        r = client.post("/oauth/token", data=form)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_request"
    r = client.post("/oauth/revoke", data={"client_id": "a\u0000", "token": "x\u0000"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
