"""Backend services: client credentials with a signed JWT assertion (SMART Backend Services)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from carnet.app import Services
from carnet.authn.clients import ClientKind
from carnet.authn.tokens import principal_from_token
from carnet.caller import Kind
from tests.support.oauth import (
    REDIRECT,
    OAuthEnv,
    assertion,
    backend_key,
    oauth_env,
    public_jwks,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def env(services: Services) -> OAuthEnv:
    return oauth_env(services)


@pytest.fixture
def key() -> Any:
    return backend_key("lab-1")


@pytest.fixture
def lab(env: OAuthEnv, key: Any) -> str:
    client, secret = env.clients.register(
        "Laboratoire",
        ClientKind.BACKEND,
        ["system/Observation.cruds", "system/Patient.rs"],
        jwks=public_jwks(key),
    )
    assert secret is None
    return client.client_id


def _request(env: OAuthEnv, signed: str, scope: str = "system/Observation.rs") -> Any:
    return env.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        },
    )


def _endpoint(env: OAuthEnv) -> str:
    return f"{env.settings.issuer_url}/oauth/token"


def test_a_valid_assertion_gets_a_backend_token(env: OAuthEnv, key: Any, lab: str) -> None:
    r = _request(
        env, assertion(key, lab, _endpoint(env)), "system/Observation.rs system/Patient.rs"
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body
    assert body["expires_in"] == int(60 * env.settings.access_token_minutes)
    principal = principal_from_token(
        env.services.crypto.token_signer(), env.settings, body["access_token"]
    )
    assert principal.kind is Kind.BACKEND
    assert principal.subject == lab and principal.client_id == lab
    assert principal.scopes == {"system/Observation.rs", "system/Patient.rs"}


def test_a_forged_assertion_is_refused(env: OAuthEnv, lab: str) -> None:
    other = backend_key("lab-1")  # same key id, another key
    r = _request(env, assertion(other, lab, _endpoint(env)))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = _request(env, assertion(backend_key("unknown"), lab, _endpoint(env)))
    assert r.status_code == 401


def test_an_expired_assertion_is_refused(env: OAuthEnv, key: Any, lab: str) -> None:
    r = _request(env, assertion(key, lab, _endpoint(env), exp_in=-120))
    assert r.status_code == 401 and "expired" in r.json()["error_description"]


def test_an_assertion_living_too_long_is_refused(env: OAuthEnv, key: Any, lab: str) -> None:
    r = _request(env, assertion(key, lab, _endpoint(env), exp_in=3600))
    assert r.status_code == 401


def test_a_replayed_jti_is_refused(env: OAuthEnv, key: Any, lab: str) -> None:
    assert _request(env, assertion(key, lab, _endpoint(env), jti="once")).status_code == 200
    r = _request(env, assertion(key, lab, _endpoint(env), jti="once"))
    assert r.status_code == 401 and "already used" in r.json()["error_description"]


def test_a_wrong_audience_is_refused(env: OAuthEnv, key: Any, lab: str) -> None:
    r = _request(env, assertion(key, lab, "https://elsewhere.example/token"))
    assert r.status_code == 401 and "aud" in r.json()["error_description"]


def test_scopes_beyond_the_clients_are_refused(env: OAuthEnv, key: Any, lab: str) -> None:
    r = _request(env, assertion(key, lab, _endpoint(env)), "system/*.rs")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = _request(env, assertion(key, lab, _endpoint(env)), "patient/Observation.rs")
    assert r.json()["error"] == "invalid_scope"


def test_wrong_assertion_type_and_no_assertion(env: OAuthEnv, key: Any, lab: str) -> None:
    r = env.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Observation.rs",
            "client_assertion_type": "urn:other",
            "client_assertion": assertion(key, lab, _endpoint(env)),
        },
    )
    assert r.status_code == 401
    r = env.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Observation.rs",
            "client_id": lab,
        },
    )
    assert r.status_code == 401


def test_a_backend_can_revoke_its_token(env: OAuthEnv, key: Any, lab: str) -> None:
    token = _request(env, assertion(key, lab, _endpoint(env))).json()["access_token"]
    jti = env.services.crypto.token_signer().verify(
        token, audience=env.settings.token_audience, issuer=env.settings.issuer_url
    )["jti"]
    r = env.http.post(
        "/oauth/revoke",
        data={
            "token": token,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(key, lab, _endpoint(env)),
        },
    )
    assert r.status_code == 200
    assert env.oauth.is_revoked(jti)


def test_an_asymmetric_confidential_app_exchanges_its_code_with_an_assertion(
    env: OAuthEnv, key: Any
) -> None:
    app, secret = env.clients.register(
        "Logiciel de cabinet",
        ClientKind.CONFIDENTIAL,
        ["user/*.rs", "patient/*.rs"],
        redirect_uris=[REDIRECT],
        jwks=public_jwks(key),
    )
    assert secret is None
    env.login_person()
    verifier = secrets.token_urlsafe(48)
    back = env.approve(env.authorize_params(app.client_id, verifier, scope="patient/*.rs"))
    form = {
        "grant_type": "authorization_code",
        "code": back["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": app.client_id,
    }
    assert env.http.post("/oauth/token", data=form).status_code == 401  # must authenticate
    r = env.http.post(
        "/oauth/token",
        data={
            **form,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(key, app.client_id, _endpoint(env)),
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "patient/*.rs"


def test_only_backend_services_use_client_credentials(env: OAuthEnv, key: Any) -> None:
    app, _ = env.clients.register(
        "App",
        ClientKind.CONFIDENTIAL,
        ["patient/*.rs"],
        redirect_uris=[REDIRECT],
        jwks=public_jwks(key),
    )
    r = _request(env, assertion(key, app.client_id, _endpoint(env)), "patient/*.rs")
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"


def test_client_assertion_with_foreign_jku_is_refused(env: OAuthEnv, key: Any, lab: str) -> None:
    """SMART Backend Services: a jku that is not the client's registered JWKS URL fails the
    verification, even when the signature verifies with a registered key."""
    foreign = assertion(key, lab, _endpoint(env), jku="https://attacker.example/jwks.json")
    r = _request(env, foreign)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert _request(env, assertion(key, lab, _endpoint(env))).status_code == 200  # the control
