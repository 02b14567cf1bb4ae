"""POST /$import: file: URLs inside import_dir only, async job, report, resumable importer."""

from __future__ import annotations

import gzip
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carnet.app import Services
from carnet.audit.models import audit_event
from carnet.caller import Kind, Principal
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.gzip_bomb import write_gzip_bomb

ASYNC = {"Prefer": "respond-async", "Content-Type": "application/fhir+json"}


def _patients(n: int) -> bytes:
    return b"\n".join(
        orjson.dumps({"resourceType": "Patient", "id": f"imp{i}", "gender": "male"})
        for i in range(n)
    )


def _params(*inputs: tuple[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "input",
                "part": [
                    {"name": "type", "valueCode": t},
                    {"name": "url", "valueUri": u},
                ],
            }
            for t, u in inputs
        ],
    }


def _wait(client: TestClient, location: str) -> dict[str, Any]:
    for _ in range(400):
        response = client.get(location.replace("http://127.0.0.1", ""))
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            return dict(response.json())
        time.sleep(0.025)
    raise AssertionError("import did not finish")


def test_import_parameters_and_manifest(client: TestClient, services: Services) -> None:
    folder = services.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Patient.ndjson.gz").write_bytes(gzip.compress(_patients(5) + b"\n{bad\n"))
    body = _params(("Patient", (folder / "Patient.ndjson.gz").as_uri()))
    response = client.post("/fhir/$import", json=body, headers=ASYNC)
    assert response.status_code == 202, response.text
    result = _wait(client, response.headers["Content-Location"])
    assert result["output"] == [{"type": "Patient", "count": 5}]
    assert result["error"] == [{"type": "OperationOutcome", "count": 1}]
    assert result["report"]["rejections"][0]["status"] == 400
    assert client.get("/fhir/Patient/imp4").status_code == 200

    # The manifest form, with a path relative to the import directory; a re-run skips the file.
    (folder / "more.ndjson").write_bytes(_patients(7))
    manifest = {
        "inputFormat": "application/fhir+ndjson",
        "input": [{"type": "Patient", "url": "file:more.ndjson"}],
    }
    response = client.post("/fhir/$import", json=manifest, headers=ASYNC)
    assert _wait(client, response.headers["Content-Location"])["report"]["stored"] == 7
    response = client.post("/fhir/$import", json=manifest, headers=ASYNC)
    again = _wait(client, response.headers["Content-Location"])["report"]
    assert again["stored"] == 0
    assert again["skipped"] == 7


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/Patient.ndjson",
        "http://127.0.0.1:9/Patient.ndjson",
        "ftp://example.org/Patient.ndjson",
        "file://other-host/data/Patient.ndjson",
        "file:///etc/passwd",
        "file:../../outside.ndjson",
        "file:missing.ndjson",
        "",
    ],
)
def test_refused_urls(client: TestClient, services: Services, url: str) -> None:
    services.settings.import_dir.mkdir(parents=True, exist_ok=True)
    response = client.post("/fhir/$import", json=_params(("Patient", url)), headers=ASYNC)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_other_refusals(client: TestClient, services: Services) -> None:
    folder = services.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.ndjson").write_bytes(_patients(1))
    good = _params(("Patient", "file:p.ndjson"))
    no_prefer = client.post(
        "/fhir/$import", json=good, headers={"Content-Type": "application/fhir+json"}
    )
    assert no_prefer.status_code == 400
    bad_type = client.post(
        "/fhir/$import", json=_params(("Nonsense", "file:p.ndjson")), headers=ASYNC
    )
    assert bad_type.status_code == 400
    not_params = client.post("/fhir/$import", json={"resourceType": "Patient"}, headers=ASYNC)
    assert not_params.status_code == 400
    assert client.get("/fhir/$import-status/nope").status_code == 404
    assert client.delete("/fhir/$import-status/nope").status_code == 404


def test_outbound_url_is_refused_before_any_job(
    client: TestClient, services: Services, tmp_path: Path
) -> None:
    """A refused kick-off leaves no job behind (nothing to poll)."""
    response = client.post(
        "/fhir/$import", json=_params(("Patient", "https://example.org/x.ndjson")), headers=ASYNC
    )
    assert response.status_code == 400
    assert "Content-Location" not in response.headers


def test_import_job_refuses_a_gzip_bomb_and_the_server_stays_up(
    client: TestClient, services: Services
) -> None:
    folder = services.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    write_gzip_bomb(folder / "Patient.ndjson.gz", _patients(2) + b"\n", mib=100)
    response = client.post(
        "/fhir/$import", json=_params(("Patient", "file:Patient.ndjson.gz")), headers=ASYNC
    )
    assert response.status_code == 202, response.text
    result = _wait(client, response.headers["Content-Location"])
    assert result["output"] == [{"type": "Patient", "count": 2}]
    [rejection] = result["report"]["rejections"]
    assert rejection["status"] == 413
    assert "import_max_compression_ratio" in rejection["reason"]
    assert client.get("/fhir/Patient/imp1").status_code == 200
    assert client.get("/fhir/metadata").status_code == 200


def _import_events(services: Services) -> list[dict[str, Any]]:
    services.audit.flush()
    with services.engine.connect() as conn:
        bodies = conn.execute(select(audit_event.c.body).order_by(audit_event.c.seq)).scalars()
        events = [orjson.loads(b) for b in bodies]
    return [e for e in events if e["action"] == "import"]


@pytest.mark.parametrize(
    ("principal", "url", "status"),
    [
        (Principal(Kind.PERSON, "acct-someone", patient_id="someone"), "file:p.ndjson", 403),
        (Principal(Kind.PROFESSIONAL, "pro-x", rpps="10000000001"), "file:p.ndjson", 403),
        # refused before any file is looked at: no probing of the import directory
        (Principal(Kind.PERSON, "acct-someone", patient_id="someone"), "file:nope.ndjson", 403),
        (
            Principal(Kind.OPERATOR, "operator:reader", scopes=frozenset({"system/*.rs"})),
            "file:p.ndjson",
            403,
        ),
        (TEST_OPERATOR, "https://example.org/p.ndjson", 400),
        (TEST_OPERATOR, "file:../outside.ndjson", 400),
        (TEST_OPERATOR, "", 400),
    ],
)
def test_refused_import_kickoff_is_audited(
    client: TestClient, services: Services, principal: Principal, url: str, status: int
) -> None:
    """A refused kick-off (not a system caller with write scopes, or a refused file) is an
    audit event with the caller and the refusal, and starts no job."""
    folder = services.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.ndjson").write_bytes(_patients(1))
    before = len(_import_events(services))
    response = client.post(
        "/fhir/$import",
        json=_params(("Patient", url)),
        headers={**ASYNC, **bearer(services, principal)},
    )
    assert response.status_code == status, response.text
    assert "Content-Location" not in response.headers
    events = _import_events(services)[before:]
    assert [(e["actor"], e["outcome"]) for e in events] == [(principal.subject, status)]
    assert client.get("/fhir/Patient/imp0").status_code == 404
