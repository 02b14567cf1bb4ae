"""HTTP hygiene of health-data responses: no caching, no sniffing, no banner, Binary content as a
sandboxed download, links built from the configured public URL, logs without values."""

from __future__ import annotations

import base64
import logging
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from carnet.app import Services, create_app
from carnet.authn.tokens import issue_access_token
from carnet.crypto.service import CryptoService, open_keyring
from carnet.db.engine import make_engine
from carnet.log_safety import TracebacksAsTypes
from carnet.settings import Settings
from tests.spec.helpers import FHIR_JSON, observation, patient
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.forkserver import ForkServer
from tests.support.migrated_store import SqliteTemplate
from tests.support.serve import carnet_serve

FORGED = "evil.example"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture
def client(sqlite_services: Services) -> Iterator[TestClient]:
    app = create_app(sqlite_services.settings, sqlite_services)
    with TestClient(
        app,
        base_url="http://127.0.0.1",
        headers=bearer(sqlite_services),
        raise_server_exceptions=False,
    ) as c:
        yield c


def _create(client: TestClient, body: dict[str, Any], **headers: str) -> str:
    response = client.post(
        f"/fhir/{body['resourceType']}", json=body, headers={**FHIR_JSON, **headers}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_health_responses_are_no_store_nosniff(client: TestClient) -> None:
    pid = _create(client, patient())
    responses = [
        client.get(f"/fhir/Patient/{pid}"),
        client.get("/fhir/Patient", params={"_id": pid}),
        client.get("/fhir/metadata"),
        client.get("/fhir/Patient/nobody"),  # an error carries them too
        client.get("/fhir/Patient", headers={"Authorization": ""}),  # and a refusal
        client.get("/auth/login"),
    ]
    for response in responses:
        assert response.headers["cache-control"] == "no-store", response.request.url
        assert response.headers["x-content-type-options"] == "nosniff", response.request.url
        assert "server" not in response.headers


def test_binary_content_is_a_sandboxed_download(client: TestClient) -> None:
    """Deposited HTML must never run in Carnet's origin: attachment + CSP sandbox."""
    html = b"<html><script>alert(document.cookie)</script></html>"
    binary = {
        "resourceType": "Binary",
        "contentType": "text/html",
        "data": base64.b64encode(html).decode(),
    }
    bid = _create(client, binary)
    raw = client.get(f"/fhir/Binary/{bid}", headers={"Accept": "text/html"})
    assert raw.status_code == 200
    assert raw.content == html
    assert raw.headers["content-disposition"] == "attachment"
    assert raw.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert raw.headers["x-content-type-options"] == "nosniff"


LINK_KEYS = {"fullUrl", "url", "request"}  # Bundle links and entries, bulk manifests


def _urls(value: Any) -> list[str]:
    """Every link a response carries (codings' systems are not links to this server)."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k in LINK_KEYS and isinstance(v, str)]
        return found + [u for v in value.values() for u in _urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in _urls(v)]
    return []


def test_forged_host_header_never_reaches_links(client: TestClient) -> None:
    """Bundle links, fullUrls, Location headers and bulk manifests use the public base URL."""
    forged = {"Host": FORGED}
    pid = _create(client, patient(), **forged)
    created = client.post("/fhir/Observation", json=observation(pid), headers=forged)
    assert FORGED not in str(created.headers)
    seen: list[str] = list(created.headers.values())
    for url in (
        "/fhir/Patient",
        f"/fhir/Patient/{pid}/_history",
        f"/fhir/Patient/{pid}/$everything",
        "/fhir/Observation?_include=Observation:subject",
    ):
        response = client.get(url, headers=forged)
        assert response.status_code == 200, response.text
        seen += _urls(response.json())
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": patient(), "request": {"method": "POST", "url": "Patient"}}],
    }
    done = client.post("/fhir", json=transaction, headers={**FHIR_JSON, **forged})
    assert done.status_code == 200, done.text
    seen += _urls(done.json())
    kicked = client.get("/fhir/$export?_type=Patient", headers={**ASYNC, **forged})
    assert kicked.status_code == 202
    status_url = kicked.headers["Content-Location"]
    seen.append(status_url)
    manifest: dict[str, Any] = {}
    for _ in range(400):
        polled = client.get(status_url.replace("http://127.0.0.1", ""), headers=forged)
        if polled.status_code == 200:
            manifest = polled.json()
            break
        time.sleep(0.025)
    assert manifest["output"]
    seen += _urls(manifest)
    assert [u for u in seen if FORGED in u] == []
    links = [u for u in seen if "://" in u]
    assert len(links) > 10
    assert [u for u in links if not u.startswith("http://127.0.0.1/fhir")] == []


def test_forged_host_header_never_reaches_a_posted_export_manifest(client: TestClient) -> None:
    """Bulk Data v2's POST kick-off: the manifest's `request` is the public URL, not the Host's."""
    forged = {"Host": FORGED}
    _create(client, patient())
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "_type", "valueString": "Patient"}],
    }
    kicked = client.post("/fhir/$export", json=parameters, headers={**ASYNC, **FHIR_JSON, **forged})
    assert kicked.status_code == 202, kicked.text
    manifest: dict[str, Any] = {}
    for _ in range(400):
        polled = client.get(kicked.headers["Content-Location"].replace("http://127.0.0.1", ""))
        if polled.status_code == 200:
            manifest = polled.json()
            break
        time.sleep(0.025)
    assert manifest["request"].startswith("http://127.0.0.1/fhir/$export")
    assert FORGED not in str(manifest)


# -- logs ---------------------------------------------------------------------------------------

SECRET_CODE = "LOINC-9137-SECRET"


def test_engine_errors_carry_no_bound_values(sqlite_services: Services) -> None:
    engine = make_engine(sqlite_services.settings.database_url)
    try:
        with engine.connect() as conn, pytest.raises(OperationalError) as info:
            conn.execute(text("SELECT * FROM no_such_table WHERE code = :c"), {"c": SECRET_CODE})
    finally:
        engine.dispose()
    assert SECRET_CODE not in str(info.value)


@pytest.mark.slow  # a real `carnet serve`
def test_unhandled_error_log_carries_no_bound_values(
    tmp_path: Path, forks: ForkServer, migrated_sqlite: SqliteTemplate
) -> None:
    """`carnet serve` under a database failure: the response and every line uvicorn or Carnet
    logs name the exception type and path only (no SQL values, no traceback); no server banner."""
    data = tmp_path / "data"
    migrated_sqlite.copy_into(data)
    with carnet_serve(data, forks=forks) as server:
        base, port = server.base, server.port
        metadata = server.metadata
        assert "server" not in metadata.headers
        assert metadata.headers["cache-control"] == "no-store"
        # The issuer (and so the tokens' iss) follows the listen address, port included.
        settings = Settings.from_env({"CARNET_PORT": str(port)}, data_dir=str(data))
        signer = CryptoService(open_keyring(settings, create=False)).token_signer()
        token, _ = issue_access_token(signer, settings, TEST_OPERATOR)
        with sqlite3.connect(data / "carnet.sqlite3") as db:  # sabotage: no token index
            db.execute("DROP TABLE idx_token")
        failed = httpx.get(
            f"{base}/fhir/Observation",
            params={"code": SECRET_CODE},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert failed.status_code == 500
        assert SECRET_CODE not in failed.text
        assert "server" not in failed.headers
    output = server.output
    assert "unhandled OperationalError on GET /fhir/Observation" in output
    assert SECRET_CODE not in output
    assert "Traceback" not in output
    assert "SELECT" not in output


def test_traceback_filter_keeps_the_type_only() -> None:
    try:
        raise ValueError(f"row for {SECRET_CODE}")
    except ValueError:
        record = logging.LogRecord(
            "uvicorn.error",
            logging.ERROR,
            __file__,
            1,
            "Exception in ASGI application\n",
            None,
            sys.exc_info(),
        )
    assert TracebacksAsTypes().filter(record) is True
    out = logging.Formatter().format(record)
    assert SECRET_CODE not in out
    assert "ValueError" in out
