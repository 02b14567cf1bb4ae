"""A third-party SMART client, the real ``fhirclient`` package, runs a standalone patient launch
with PKCE against `carnet serve` on loopback, using only what the server publishes (the
CapabilityStatement's ``rest.security``), then reads and searches the patient's record.

The server is started on a free port with ``--port`` and no ``CARNET_ISSUER_URL``: the issuer,
the OAuth endpoints and the tokens' ``iss`` all follow the listen address. The patient's sign-in
(password, then TOTP) and the grant screen are scripted with httpx, as a browser would post them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pyotp
import pytest
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

from carnet.app import build_services
from carnet.authn.api import CSRF_HEADER
from carnet.authn.clients import ClientKind
from carnet.authn.service import AccountService
from carnet.settings import Settings
from tests.spec.helpers import observation, patient
from tests.support.authn import FAST_PASSWORDS, PASSWORD
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.forkserver import ForkServer
from tests.support.migrated_store import SqliteTemplate
from tests.support.serve import carnet_serve, free_port

# Slow: a real `carnet serve` and a third-party client.
pytestmark = pytest.mark.slow

LOGIN = "anouk.vernadet@exemple-sante.fr"


@dataclass
class World:
    base: str  # the server's root, as derived from its listen address
    client_id: str
    redirect_uri: str
    patient_id: str
    totp_uri: str


@pytest.fixture
def world(tmp_path: Path, forks: ForkServer, migrated_sqlite: SqliteTemplate) -> Iterator[World]:
    port = free_port()
    data_dir = tmp_path / "data"
    migrated_sqlite.copy_into(data_dir)
    settings = Settings.from_env({}, data_dir=str(data_dir), port=str(port))
    services = build_services(settings, migrate=False)
    try:
        pid = services.fhir.create(
            "Patient", patient("Vernadet", "Anouk"), ctx=AS_LOCAL_OPERATOR
        ).stored.res_id
        for value in (168.0, 169.5):
            services.fhir.create(
                "Observation", observation(pid, value=value), ctx=AS_LOCAL_OPERATOR
            )
        accounts = AccountService(
            services.engine,
            services.crypto,
            settings,
            passwords=FAST_PASSWORDS,
        )
        account_id = accounts.create_person(LOGIN, PASSWORD, pid)
        totp_uri = accounts.enroll_totp(account_id)
        redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
        app, _ = services.clients.register(
            "Carnet de tension",
            ClientKind.PUBLIC,
            ["patient/*.read", "launch/patient", "openid", "fhirUser"],
            redirect_uris=[redirect_uri],
        )
    finally:
        services.close()
    # The account's hash is a weak one already (FAST_PASSWORDS): the server's profile matches it,
    # so the sign-in does not rehash it with the product's 64 MiB profile.
    with carnet_serve(
        data_dir, port=port, forks=forks, password_hash_profile="test-only-weak"
    ) as server:
        yield World(server.base, app.client_id, redirect_uri, pid, totp_uri)


def _sign_in_and_approve(world: World, authorize_url: str) -> str:
    """What the patient does in the browser: log in (password, TOTP), approve every scope on the
    grant screen. Returns where the server redirects back to the app."""
    with httpx.Client(base_url=world.base, timeout=30) as browser:
        first = browser.post("/auth/login", json={"login": LOGIN, "password": PASSWORD})
        assert first.status_code == 200, first.text
        code = pyotp.parse_uri(world.totp_uri).now()
        done = browser.post(
            "/auth/totp", json={"code": code}, headers={CSRF_HEADER: first.json()["csrf_token"]}
        )
        assert done.status_code == 200, done.text
        screen = browser.get(authorize_url)
        assert screen.status_code == 200, screen.text
        ticket = re.search(r'name="ticket" value="([^"]+)"', screen.text)
        assert ticket
        offered = re.findall(r'name="scope" value="([^"]+)"', screen.text)
        answer = browser.post(
            "/oauth/authorize",
            data={"ticket": ticket.group(1), "decision": "approve", "scope": offered},
        )
        assert answer.status_code == 303, answer.text
        return answer.headers["location"]


def test_fhirclient_runs_a_standalone_patient_launch_with_pkce(world: World) -> None:
    smart = smart_client.FHIRClient(
        settings={
            "app_id": world.client_id,
            "api_base": f"{world.base}/fhir",
            "redirect_uri": world.redirect_uri,
            "scope": "patient/*.read openid fhirUser",  # SMART v1 scopes; launch/patient added
        }
    )
    authorize_url = smart.authorize_url  # read from the CapabilityStatement's rest.security
    assert authorize_url.startswith(f"{world.base}/oauth/authorize?")
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]

    back = _sign_in_and_approve(world, authorize_url)
    assert back.startswith(world.redirect_uri)
    smart.handle_callback(back)  # exchanges the code with the PKCE verifier
    assert smart.ready
    assert smart.patient_id == world.patient_id

    read = Patient.read(world.patient_id, smart.server)
    assert read.id == world.patient_id
    assert read.name[0].family == "Vernadet"
    search = Observation.where(struct={"patient": world.patient_id})
    found = list(search.perform_resources_iter(smart.server))
    assert sorted(o.valueQuantity.value for o in found) == [168.0, 169.5]
    assert smart.patient is not None  # the client's own convenience read works as well
