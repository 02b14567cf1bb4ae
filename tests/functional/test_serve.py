"""The real server: `carnet serve` in a subprocess, spoken to over loopback HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.authn.tokens import issue_access_token
from carnet.crypto.service import CryptoService, open_keyring
from carnet.settings import Settings
from tests.support.auth import TEST_OPERATOR
from tests.support.forkserver import ForkServer
from tests.support.serve import carnet_serve

FHIR = "application/fhir+json"


@pytest.mark.slow  # a real `carnet serve`
def test_carnet_serve_answers_on_loopback(tmp_path: Path, forks: ForkServer) -> None:
    # An empty data directory: the server migrates the store and creates its master key itself.
    with carnet_serve(tmp_path / "data", forks=forks) as server:
        r = server.metadata
        port = server.port
        assert r.status_code == 200
        assert r.json()["resourceType"] == "CapabilityStatement"
        patient = {"resourceType": "Patient", "gender": "other"}
        url = f"{server.base}/fhir/Patient"
        anonymous = httpx.post(url, json=patient, headers={"Content-Type": FHIR})
        assert anonymous.status_code == 401
        # A token signed with the server's own key (as `carnet token issue` makes one).
        # Same listen address as the server: its issuer (the tokens' iss) is derived from it.
        settings = Settings.from_env({}, data_dir=str(tmp_path / "data"), port=str(port))
        signer = CryptoService(open_keyring(settings, create=False)).token_signer()
        token, _ = issue_access_token(signer, settings, TEST_OPERATOR)
        auth = {"Content-Type": FHIR, "Authorization": f"Bearer {token}"}
        created = httpx.post(url, json=patient, headers=auth)
        assert created.status_code == 201
        assert (tmp_path / "data" / "master.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "2001:db8::1"])
def test_clients_without_credentials_are_refused(sqlite_services: Services, address: str) -> None:
    """From anywhere, loopback included, health data needs a credential; metadata does not."""
    app = create_app(sqlite_services.settings, sqlite_services)
    with TestClient(app, base_url="http://127.0.0.1", client=(address, 50000)) as client:
        assert client.get("/fhir/metadata").status_code == 200
        for method, path in [("GET", "/fhir/Patient"), ("POST", "/fhir/Patient")]:
            r = client.request(method, path, json={"resourceType": "Patient"})
            assert r.status_code == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert r.json()["resourceType"] == "OperationOutcome"
    # Nothing was written by the refused POSTs.
    with sqlite_services.fhir.repo.unit(write=False) as unit:
        assert unit.history("Patient", None, since=None, offset=0, count=1)[0] == 0
