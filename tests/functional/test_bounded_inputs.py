"""Bounded inputs: every request body is capped while it streams (login forms, resources,
Bundles), and one resource may not be larger in a Bundle than on its own."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, build_services, create_app
from carnet.fhir.importer import Importer
from tests.conftest import make_settings
from tests.spec.helpers import FHIR_JSON, patient
from tests.support.auth import bearer
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.forkserver import ForkServer
from tests.support.migrated_store import SqliteTemplate
from tests.support.serve import carnet_serve

FORM_CAP = 2048
RESOURCE_CAP = 8192
BUNDLE_CAP = 32768


@pytest.fixture
def capped(tmp_path: Path, migrated_sqlite: SqliteTemplate) -> Iterator[Services]:
    migrated_sqlite.copy_into(tmp_path / "data")  # migrated once per session, not per test
    settings = make_settings(tmp_path / "data").with_(
        max_form_bytes=FORM_CAP, max_resource_bytes=RESOURCE_CAP, max_bundle_bytes=BUNDLE_CAP
    )
    built = build_services(settings, migrate=False)
    yield built
    built.close()


@pytest.fixture
def client(capped: Services) -> Iterator[TestClient]:
    app = create_app(capped.settings, capped)
    with TestClient(app, base_url="http://127.0.0.1", headers=bearer(capped)) as c:
        yield c


def _padded_patient(size: int) -> dict[str, Any]:
    body = patient()
    body["name"][0]["text"] = "x" * size
    return body


def _patients(client: TestClient) -> int:
    return int(client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"])


def test_declared_body_over_cap_is_413_before_the_route_runs(client: TestClient) -> None:
    over = client.post("/fhir/Patient", json=_padded_patient(RESOURCE_CAP), headers=FHIR_JSON)
    assert over.status_code == 413
    assert over.json()["resourceType"] == "OperationOutcome"
    assert over.json()["issue"][0]["code"] == "too-long"
    assert over.headers["cache-control"] == "no-store"
    login = client.post("/auth/login", data={"login": "a", "password": "b" * FORM_CAP})
    assert login.status_code == 413
    assert login.headers["content-type"].startswith("text/plain")
    under = client.post("/fhir/Patient", json=_padded_patient(RESOURCE_CAP // 2), headers=FHIR_JSON)
    assert under.status_code == 201, under.text
    assert _patients(client) == 1  # the refused one changed nothing


class _Chunks:
    """An ASGI client side that offers a body in chunks and counts how many were taken."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self.chunk = chunk
        self.remaining = count
        self.taken = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.remaining == 0:
            return {"type": "http.disconnect"}
        self.remaining -= 1
        self.taken += 1
        return {"type": "http.request", "body": self.chunk, "more_body": self.remaining > 0}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(next(m["status"] for m in self.sent if m["type"] == "http.response.start"))

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def _scope(capped: Services, method: str, path: str, content_type: str) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", content_type.encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in bearer(capped).items()]
    headers.append((b"transfer-encoding", b"chunked"))  # no Content-Length to trust
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


@pytest.mark.parametrize(
    ("method", "path", "cap", "fhir"),
    [
        ("POST", "/fhir/Patient", RESOURCE_CAP, True),
        ("POST", "/fhir", BUNDLE_CAP, True),
        ("POST", "/auth/login", FORM_CAP, False),
        ("POST", "/identity/match", RESOURCE_CAP, False),
    ],
)
def test_streamed_body_over_cap_is_413_without_reading_it_whole(
    capped: Services, method: str, path: str, cap: int, fhir: bool
) -> None:
    """A chunked body (no Content-Length) is stopped at the chunk that passes the cap."""
    import anyio

    app = create_app(capped.settings, capped)
    chunks = _Chunks(b"{" + b" " * 1023, count=10_000)  # 10 MB offered, 1 KiB at a time
    content_type = (
        "application/x-www-form-urlencoded" if path == "/auth/login" else "application/fhir+json"
    )
    anyio.run(app, _scope(capped, method, path, content_type), chunks.receive, chunks.send)
    assert chunks.status == 413
    assert chunks.taken == cap // 1024 + 1
    if fhir:
        assert orjson.loads(chunks.body)["resourceType"] == "OperationOutcome"
    else:
        assert b"exceeds" in chunks.body


def test_one_resource_in_a_bundle_is_capped_like_one_resource(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": _padded_patient(RESOURCE_CAP),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    refused = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert refused.status_code == 413, refused.text
    assert refused.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource"]
    assert _patients(client) == 0
    bundle["entry"] = bundle["entry"][:1]
    assert client.post("/fhir", json=bundle, headers=FHIR_JSON).status_code == 200


def test_import_caps_one_resource_like_the_api(capped: Services, tmp_path: Path) -> None:
    """`carnet import` and $import write through the same cap as a POST: a resource larger than
    one resource may be is set aside (413, its path named), the others are stored."""
    lines = [orjson.dumps(patient()), orjson.dumps(_padded_patient(RESOURCE_CAP))]
    path = tmp_path / "Patient.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = Importer(capped.fhir, ctx=AS_LOCAL_OPERATOR).run([path])
    assert report.stored == 1
    assert [(r.status, r.reason) for r in report.rejected] == [(413, "too-long: Patient")]


# -- the real server -----------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path, forks: ForkServer, migrated_sqlite: SqliteTemplate) -> Iterator[int]:
    migrated_sqlite.copy_into(tmp_path / "data")
    with carnet_serve(tmp_path / "data", forks=forks) as running:
        yield running.port


@pytest.mark.slow  # a real `carnet serve`
def test_chunked_login_body_is_refused_while_it_streams(server: int) -> None:
    """uvicorn and the middleware together: a 200 MB chunked login body gets its 413 after the
    first kilobytes, while the client is still sending; the server never waits for the rest."""
    chunk = b"a" * 4096
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        answer = b""
        while sent < 200 * 1024 * 1024:
            readable, _, _ = select.select([sock], [], [], 0.005)
            if readable:
                answer = sock.recv(65536)
                break
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                answer = sock.recv(65536)
                break
            sent += len(chunk)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 8 * 1024 * 1024  # stopped early: 16 KiB cap plus what the buffers held
