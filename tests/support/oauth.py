"""An app with the OAuth / OIDC routers wired from ``services`` (the way carnet/app.py will), a
logged-in portal session, PKCE helpers and backend-service keys for the access tests."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey

from carnet.app import Services
from carnet.authn import oauth_api, oidc_api
from carnet.authn.api import SESSION_COOKIE
from carnet.authn.client_keys import KeySetFetcher
from carnet.authn.clients import ClientService
from carnet.authn.oauth import OAuthService
from carnet.authn.oidc import DevIdentityProvider, ProfessionalLogin
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from carnet.authn.smart import s256
from carnet.authn.tickets import Tickets
from carnet.dependencies import installed
from carnet.settings import Settings
from tests.support.authn import FAST_PASSWORDS, PASSWORD, partial_app

REDIRECT = "http://127.0.0.1:9000/callback"
APP_SCOPES = "patient/*.rs launch/patient openid fhirUser offline_access user/*.rs"


@dataclass
class OAuthEnv:
    services: Services
    app: FastAPI
    http: TestClient
    clients: ClientService
    accounts: AccountService
    sessions: SessionService
    oauth: OAuthService

    @property
    def installed(self) -> Services:
        """The services the app's routers use (its tickets, identity providers...)."""
        return installed(self.app)

    @property
    def settings(self) -> Any:
        return self.installed.settings

    def login_person(self, patient_id: str = "pat-1", login: str | None = None) -> str:
        """A person with a full portal session in ``http``'s cookie jar; returns the account id."""
        account_id = self.accounts.create_person(
            login or f"person-{uuid.uuid4().hex[:8]}@example.org", PASSWORD, patient_id
        )
        cookie, _ = self.sessions.open(account_id, second_factor=True)
        self.http.cookies.set(SESSION_COOKIE, cookie)
        return account_id

    def login_professional(self, rpps: str = "10100000001", profession: str = "nurse") -> str:
        account_id = self.accounts.create_professional(f"pro-{rpps}", None, rpps, profession)
        cookie, _ = self.sessions.open(account_id, second_factor=True)
        self.http.cookies.set(SESSION_COOKIE, cookie)
        return account_id

    def authorize_params(self, client_id: str, verifier: str, **extra: str) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "patient/Observation.rs launch/patient openid fhirUser offline_access",
            "state": "st-" + secrets.token_hex(4),
            "aud": self.settings.token_audience,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            "nonce": "n-1",
        }
        params.update(extra)
        return params

    def grant_screen(self, params: dict[str, str]) -> tuple[str, str]:
        """GET the grant screen; returns (html, ticket)."""
        r = self.http.get(f"/oauth/authorize?{urlencode(params)}", follow_redirects=False)
        assert r.status_code == 200, r.text
        m = re.search(r'name="ticket" value="([^"]+)"', r.text)
        assert m
        return r.text, m.group(1)

    def approve(self, params: dict[str, str], scopes: list[str] | None = None) -> dict[str, str]:
        """Run the grant screen and approve; returns the redirect's query parameters."""
        _, ticket = self.grant_screen(params)
        chosen = scopes if scopes is not None else params["scope"].split()
        r = self.http.post(
            "/oauth/authorize",
            data={"ticket": ticket, "decision": "approve", "scope": chosen},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return redirect_query(r.headers["location"])

    def code_flow(
        self, client_id: str, scopes: list[str] | None = None, **extra: str
    ) -> dict[str, Any]:
        verifier = secrets.token_urlsafe(48)
        params = self.authorize_params(client_id, verifier, **extra)
        back = self.approve(params, scopes)
        r = self.http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": back["code"],
                "redirect_uri": REDIRECT,
                "client_id": client_id,
                "code_verifier": verifier,
            },
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def redirect_query(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT, location
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def oauth_app(
    services: Services,
    accounts: AccountService,
    sessions: SessionService,
    *,
    settings: Settings | None = None,
    key_sets: KeySetFetcher | None = None,
) -> FastAPI:
    """The OAuth routers over ``services`` with their own OAuth services (``settings`` instead of
    the services', ``key_sets`` to fetch clients' JWKS URLs from a fake transport)."""
    settings = settings or services.settings
    signer = services.crypto.token_signer()
    clients = ClientService(services.engine, settings)
    tickets = Tickets(signer, settings)
    app = FastAPI()
    wired = replace(
        services,
        settings=settings,
        accounts=accounts,
        sessions=sessions,
        clients=clients,
        tickets=tickets,
        oauth=OAuthService(
            services.engine, settings, signer, clients, services.audit, accounts, key_sets=key_sets
        ),
        dev_idp=DevIdentityProvider(settings, signer),
        # The relying party reaches the in-process dev IdP through an ASGI transport: the real
        # OIDC flow, without a socket.
        pro_login=ProfessionalLogin(
            settings, TestClient(app, base_url=settings.issuer_url), tickets, services.audit
        ),
    )
    return partial_app(wired, oauth_api.router, oidc_api.router, app=app)


def oauth_env(
    services: Services,
    *,
    settings: Settings | None = None,
    key_sets: KeySetFetcher | None = None,
) -> OAuthEnv:
    settings = settings or services.settings
    accounts = AccountService(
        services.engine,
        services.crypto,
        settings,
        passwords=FAST_PASSWORDS,
    )
    sessions = SessionService(services.engine, settings)
    app = oauth_app(services, accounts, sessions, settings=settings, key_sets=key_sets)
    http = TestClient(app, base_url=settings.issuer_url)
    wired = installed(app)
    return OAuthEnv(services, app, http, wired.clients, accounts, sessions, wired.oauth)


def backend_key(kid: str = "k1") -> ECKey:
    return ECKey.generate_key("P-384", {"kid": kid}, private=True)


def public_jwks(*keys: ECKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def assertion(
    key: ECKey,
    client_id: str,
    audience: str,
    *,
    jti: str | None = None,
    exp_in: int = 120,
    kid: str | None = None,
    jku: str | None = None,
) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "exp": now + exp_in,
        "iat": now,
        "jti": jti or uuid.uuid4().hex,
    }
    header = {"alg": "ES384", "kid": kid or str(key.kid), "typ": "JWT"}
    if jku is not None:
        header["jku"] = jku
    return jwt.encode(header, claims, key, algorithms=["ES384"])
