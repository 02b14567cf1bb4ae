"""The /record router: a person sees, refuses or closes their space, or that of someone they
represent; nobody else's. The principal is set as the authentication middleware will set it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request, Response
from fastapi.testclient import TestClient

from carnet.app import Services
from carnet.authn.service import AccountService
from carnet.caller import Kind, Principal
from carnet.dependencies import installed
from carnet.fhir import api as fhir_api
from carnet.fhir.errors import FhirError
from carnet.record import api as record_api
from carnet.record.register import read_register
from tests.support.authn import (
    PASSWORD,
    Clock,
    account_service,
    login_verifier,
    partial_app,
    totp_code,
)
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.unit.record.helpers import family_csv


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(services: Services, clock: Clock) -> Iterator[TestClient]:
    # objecting and closing step up: accounts and login checks on the test's clock
    accounts = account_service(services, clock)
    app = partial_app(
        replace(services, accounts=accounts, login=login_verifier(services, accounts)),
        record_api.router,
    )

    @app.middleware("http")
    async def principal(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        who = request.headers.get("x-patient")
        kind = Kind(request.headers.get("x-kind", "person"))
        if who:
            account = request.headers.get("x-account", f"account-{who}")
            request.state.principal = Principal(kind, account, patient_id=who)
        return await call_next(request)

    @app.exception_handler(FhirError)
    async def fhir_error(_request: Request, exc: FhirError) -> Response:
        return fhir_api.error_response(exc)

    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _with_factors(
    accounts: AccountService, clock: Clock, patient_id: str
) -> tuple[dict[str, str], Callable[[], dict[str, Any]]]:
    """A real account for the person: the headers that act as it, and a maker of step-up proofs
    (each with the code of a new time step: a code is accepted once)."""
    account_id = accounts.create_person(f"{patient_id}@exemple.fr", PASSWORD, patient_id)
    uri = accounts.enroll_totp(account_id)

    def step_up() -> dict[str, Any]:
        clock.advance(seconds=30)
        return {"stepUp": {"password": PASSWORD, "code": totp_code(uri, clock)}}

    return {"x-patient": patient_id, "x-account": account_id}, step_up


def test_person_and_representative(
    client: TestClient, services: Services, clock: Clock, tmp_path: Path
) -> None:
    report = services.record.provision(
        read_register(family_csv(tmp_path / "r.csv"), today=date.today()), ctx=AS_LOCAL_OPERATOR
    )
    claire, baby, paul = report.patients[2], report.patients[3], report.patients[4]
    assert client.get("/record/space").status_code == 401
    own = client.get("/record/space", headers={"x-patient": claire})
    assert own.status_code == 200
    assert own.json()["state"] == "pending" and own.json()["represented"] == [baby]
    child = client.get(f"/record/space?patient={baby}", headers={"x-patient": claire})
    assert child.json()["representatives"][0]["patient"] == claire
    foreign = client.get(f"/record/space?patient={baby}", headers={"x-patient": paul})
    assert foreign.status_code == 404
    assert foreign.json()["resourceType"] == "OperationOutcome"
    pro = client.get("/record/space", headers={"x-patient": paul, "x-kind": "professional"})
    assert pro.status_code == 403
    # Objecting and closing ask for the password and a second-factor code again (step-up).
    accounts = installed(client.app).accounts  # type: ignore[arg-type]
    as_claire, claire_step_up = _with_factors(accounts, clock, claire)
    as_paul, paul_step_up = _with_factors(accounts, clock, paul)
    unproven = client.post(f"/record/objection?patient={baby}", headers=as_claire)
    assert unproven.status_code == 401
    refused = client.post(
        f"/record/objection?patient={baby}", headers=as_claire, json=claire_step_up()
    )
    assert refused.status_code == 200 and refused.json()["state"] == "refused"
    again = client.post(
        f"/record/objection?patient={baby}", headers=as_claire, json=claire_step_up()
    )
    assert again.status_code == 409
    closed = client.post("/record/closure", headers=as_paul, json=paul_step_up())
    assert closed.json()["state"] == "closed" and closed.json()["reason"] == "request"
    assert not services.record.is_open(paul)
    missing = client.get("/record/space", headers={"x-patient": "nobody"})
    assert missing.status_code == 404
