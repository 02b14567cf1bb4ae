"""The /record router: a person sees, refuses or closes their space, or that of someone they
represent; nobody else's. The principal is set as the authentication middleware will set it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from carnet.access.principal import Kind, Principal
from carnet.app import Services
from carnet.fhir import api as fhir_api
from carnet.fhir.errors import FhirError
from carnet.record import api as record_api
from carnet.record.register import read_register
from tests.unit.record.helpers import family_csv


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.services = services
    app.include_router(record_api.router)

    @app.middleware("http")
    async def principal(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        who = request.headers.get("x-patient")
        kind = Kind(request.headers.get("x-kind", "person"))
        if who:
            request.state.principal = Principal(kind, f"account-{who}", patient_id=who)
        return await call_next(request)

    @app.exception_handler(FhirError)
    async def fhir_error(_request: Request, exc: FhirError) -> Response:
        return fhir_api.error_response(exc)

    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def test_person_and_representative(client: TestClient, services: Services, tmp_path: Path) -> None:
    report = services.record.provision(
        read_register(family_csv(tmp_path / "r.csv"), today=date.today())
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
    refused = client.post(f"/record/objection?patient={baby}", headers={"x-patient": claire})
    assert refused.status_code == 200 and refused.json()["state"] == "refused"
    again = client.post(f"/record/objection?patient={baby}", headers={"x-patient": claire})
    assert again.status_code == 409
    closed = client.post("/record/closure", headers={"x-patient": paul})
    assert closed.json()["state"] == "closed" and closed.json()["reason"] == "request"
    assert not services.record.is_open(paul)
    missing = client.get("/record/space", headers={"x-patient": "nobody"})
    assert missing.status_code == 404
