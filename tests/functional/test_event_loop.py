"""Endpoints that read their body asynchronously run the FHIR service off the event loop: its
database work, encryption and SQLite's lock waits would otherwise stop every other request of
the worker (a large transaction Bundle held them all). The access hook, called at each
interaction's checks, notes whether it ran where an event loop runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from tests.support.auth import TEST_OPERATOR, bearer

FHIR = {"Content-Type": "application/fhir+json"}


class LoopWatch:
    """The installed access hook, noting for each check whether an event loop runs here."""

    def __init__(self, inner: Any, on_loop: list[bool] | None = None) -> None:
        self.inner = inner
        self.on_loop: list[bool] = [] if on_loop is None else on_loop

    def open(self) -> LoopWatch:
        """Each session's guard, watched alike."""
        return LoopWatch(self.inner.open(), self.on_loop)

    def check(self, *args: Any) -> None:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        self.inner.check(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def watched(services: Services) -> Iterator[tuple[TestClient, LoopWatch]]:
    watch = LoopWatch(services.fhir.access)
    services.fhir.access = watch  # type: ignore[assignment]
    app = create_app(services.settings, services)
    headers = bearer(services, TEST_OPERATOR)
    with TestClient(app, base_url="http://127.0.0.1", headers=headers) as client:
        yield client, watch


def _patient(family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}]}


def test_body_reading_endpoints_run_the_service_off_the_loop(
    watched: tuple[TestClient, LoopWatch], services: Services
) -> None:
    client, watch = watched
    created = client.post("/fhir/Patient", json=_patient("Loop"), headers=FHIR)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    calls = [
        ("PUT", f"/fhir/Patient/{pid}", {**_patient("Loop2"), "id": pid}, 200),
        ("POST", "/fhir/Patient/_search", None, 200),
        (
            "POST",
            "/fhir",
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"resource": _patient("T"), "request": {"method": "POST", "url": "Patient"}}
                ],
            },
            200,
        ),
        (
            "POST",
            "/fhir",
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "GET", "url": f"Patient/{pid}"}}],
            },
            200,
        ),
    ]
    for method, url, body, status in calls:
        content = orjson.dumps(body) if body is not None else None
        headers = (
            FHIR if body is not None else {"Content-Type": "application/x-www-form-urlencoded"}
        )
        answer = client.request(method, url, content=content or b"family=Loop", headers=headers)
        assert answer.status_code == status, (url, answer.text)
    folder = services.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loop.ndjson").write_bytes(orjson.dumps({**_patient("Imp"), "id": "loop-imp"}))
    kicked = client.post(
        "/fhir/$import",
        json={"input": [{"type": "Patient", "url": "file:loop.ndjson"}]},
        headers={**FHIR, "Prefer": "respond-async"},
    )
    assert kicked.status_code == 202, kicked.text
    assert len(watch.on_loop) >= 6
    assert not any(watch.on_loop), watch.on_loop
