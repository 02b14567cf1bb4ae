"""The professionals' OpenID Connect login, end to end against the development identity provider
(through an ASGI transport: the real flow, no socket, no mock), and the ID-token checks."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from urllib.parse import urlsplit

import httpx2 as httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carnet.app import Services
from carnet.audit.models import audit_event
from carnet.authn import oidc_api
from carnet.authn.api import SESSION_COOKIE
from carnet.authn.oidc import (
    DEMO_PROFESSIONALS,
    DevIdentityProvider,
    OidcError,
    ProfessionalLogin,
    professional_from_claims,
    safe_next,
)
from carnet.caller import Kind
from carnet.crypto.tokens import TokenSigner
from tests.support.authn import partial_app
from tests.support.oauth import OAuthEnv, oauth_env

NURSE = next(p for p in DEMO_PROFESSIONALS if p.profession == "nurse")


@pytest.fixture
def env(services: Services) -> OAuthEnv:
    return oauth_env(services)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _to_callback(env: OAuthEnv, rpps: str, next_path: str = "/fhir/metadata") -> str:
    """Log in at the dev IdP; returns the callback URL it redirects to."""
    r = env.http.get(f"/auth/pro/login?next={next_path}", follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(f"{env.settings.issuer_url}/dev-idp/authorize?")
    assert "code_challenge=" in r.headers["location"] and "nonce=" in r.headers["location"]
    page = env.http.get(_path(r.headers["location"]))
    assert page.status_code == 200 and NURSE.rpps in page.text
    fields = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    r = env.http.post("/dev-idp/authorize", data={**fields, "rpps": rpps}, follow_redirects=False)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith(f"{env.settings.issuer_url}/auth/pro/callback?")
    return location.replace("&amp;", "&")


def _actions(services: Services) -> list[tuple[str, int]]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(audit_event.c.body).order_by(audit_event.c.seq)).all()
    return [(b["action"], b["outcome"]) for b in (orjson.loads(r.body) for r in rows)]


def test_professional_logs_in_end_to_end(env: OAuthEnv) -> None:
    callback = _to_callback(env, NURSE.rpps)
    r = env.http.get(_path(callback), follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/fhir/metadata"
    cookie = env.http.cookies.get(SESSION_COOKIE)
    principal = env.sessions.principal(cookie, env.accounts)
    assert principal is not None and principal.kind is Kind.PROFESSIONAL
    assert (principal.rpps, principal.profession) == (NURSE.rpps, "nurse")
    assert ("login", 200) in _actions(env.services)
    # a second login finds the same account
    env.http.get(_path(_to_callback(env, NURSE.rpps)), follow_redirects=False)
    again = env.sessions.principal(env.http.cookies.get(SESSION_COOKIE), env.accounts)
    assert again is not None and again.subject == principal.subject
    assert cookie != env.http.cookies.get(SESSION_COOKIE)


def test_the_code_cannot_be_used_twice_nor_the_state_forged(env: OAuthEnv) -> None:
    callback = _to_callback(env, NURSE.rpps)
    forged_state = re.sub(r"state=[^&]+", "state=forged", callback)
    r = env.http.get(_path(forged_state), follow_redirects=False)
    assert r.status_code == 401 and "state" in r.text
    assert env.http.get(_path(callback), follow_redirects=False).status_code == 303
    replay = env.http.get(_path(callback), follow_redirects=False)
    assert replay.status_code == 401  # the dev IdP spent the code
    assert ("login-failed", 401) in _actions(env.services)


def test_a_callback_without_a_login_in_progress_is_refused(env: OAuthEnv) -> None:
    callback = _to_callback(env, NURSE.rpps)
    env.http.cookies.clear()
    r = env.http.get(_path(callback), follow_redirects=False)
    assert r.status_code == 401 and SESSION_COOKIE not in env.http.cookies


def test_a_disabled_professional_cannot_log_in(env: OAuthEnv) -> None:
    env.http.get(_path(_to_callback(env, NURSE.rpps)), follow_redirects=False)
    found = env.accounts.find_by_rpps(NURSE.rpps)
    assert found is not None
    env.accounts.set_disabled(found.account_id)
    env.http.cookies.clear()
    r = env.http.get(_path(_to_callback(env, NURSE.rpps)), follow_redirects=False)
    assert r.status_code == 403


def _login(env: OAuthEnv) -> ProfessionalLogin:
    return env.installed.pro_login


def test_the_id_token_is_checked(env: OAuthEnv) -> None:
    login = _login(env)
    settings = env.settings
    real = env.installed.dev_idp
    assert isinstance(real, DevIdentityProvider)
    good = real.id_token(NURSE, "nonce-1")
    assert login.verify_id_token(good, "nonce-1")["SubjectNameID"] == f"8{NURSE.rpps}"
    with pytest.raises(OidcError, match="nonce"):
        login.verify_id_token(good, "nonce-2")
    # signed by another key under the same key id, and under another key id
    for key_id in (real.signer.key_id, "other-kid"):
        forger = DevIdentityProvider(settings, TokenSigner(b"\x07" * 32, key_id))
        with pytest.raises(OidcError, match="signature"):
            login.verify_id_token(forger.id_token(NURSE, "nonce-1"), "nonce-1")
    other_audience = DevIdentityProvider(settings.with_(oidc_client_id="someone-else"), real.signer)
    with pytest.raises(OidcError, match="aud"):
        login.verify_id_token(other_audience.id_token(NURSE, "nonce-1"), "nonce-1")
    other_issuer = DevIdentityProvider(settings.with_(issuer_url="http://127.0.0.1:9"), real.signer)
    with pytest.raises(OidcError, match="iss"):
        login.verify_id_token(other_issuer.id_token(NURSE, "nonce-1"), "nonce-1")
    now = int(time.time())
    expired = real.signer.sign(
        {
            "iss": real.issuer,
            "aud": settings.oidc_client_id,
            "sub": "8x",
            "iat": now - 900,
            "exp": now - 600,
            "nonce": "nonce-1",
        }
    )
    with pytest.raises(OidcError, match="expired"):
        login.verify_id_token(expired, "nonce-1")
    unsigned = good.rsplit(".", 1)[0] + "."
    with pytest.raises(OidcError):
        login.verify_id_token(unsigned, "nonce-1")


def test_a_forged_id_token_fails_the_whole_login(env: OAuthEnv) -> None:
    """The token endpoint answers an ID token signed with another key: no session."""
    real = env.installed.dev_idp
    assert real is not None
    _login(env).discovery()
    _login(env)._key_set()  # the RP knows the issuer's real keys
    callback = _to_callback(env, NURSE.rpps)
    real.signer = TokenSigner(b"\x09" * 32, real.signer.key_id)  # the IdP is impersonated
    r = env.http.get(_path(callback), follow_redirects=False)
    assert r.status_code == 401 and "signature" in r.text
    assert SESSION_COOKIE not in env.http.cookies


def test_dev_idp_is_loopback_only_and_checks_its_client(env: OAuthEnv) -> None:
    remote = TestClient(env.app, base_url=env.settings.issuer_url, client=("203.0.113.9", 4000))
    assert remote.get("/dev-idp/.well-known/openid-configuration").status_code == 403
    doc = env.http.get("/dev-idp/.well-known/openid-configuration").json()
    assert doc["issuer"] == env.settings.oidc_issuer
    r = env.http.get(
        "/dev-idp/authorize?response_type=code&scope=openid&client_id=carnet"
        "&redirect_uri=https://evil.example/cb&code_challenge=x&code_challenge_method=S256"
    )
    assert r.status_code == 400
    # Where professionals log in elsewhere (no built-in provider), its endpoints are missing.
    without = partial_app(replace(env.installed, dev_idp=None), oidc_api.router)
    with TestClient(without, base_url=env.settings.issuer_url) as elsewhere:
        assert elsewhere.get("/dev-idp/jwks").status_code == 404


def test_claims_mapping() -> None:
    psc = {
        "sub": "x",
        "SubjectNameID": "810100000001",
        "SubjectRefPro": {"exercices": [{"codeProfession": "21"}]},
    }
    who = professional_from_claims(psc)
    assert (who.rpps, who.profession) == ("10100000001", "pharmacist")
    assert professional_from_claims({"sub": "y", "rpps": "1", "profession": "nurse"}).rpps == "1"
    with pytest.raises(OidcError):
        professional_from_claims({"sub": "z", "SubjectNameID": "810100000001"})
    assert safe_next("//evil.example") == "/" and safe_next("https://x") == "/"
    assert safe_next("/fhir/Patient") == "/fhir/Patient"


def test_the_relying_party_only_calls_the_configured_issuer(services: Services) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(503)

    env = oauth_env(services)
    login = ProfessionalLogin(
        env.settings, httpx.Client(transport=httpx.MockTransport(handler)), env.installed.tickets
    )
    with pytest.raises(OidcError, match="discovery"):
        login.start("/")
    assert seen == [f"{env.settings.oidc_issuer}/.well-known/openid-configuration"]
