"""The SMART on FHIR authorisation server: code + PKCE, the grant screen, refresh rotation with
replay detection, revocation, and the errors each wrong request gets."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt as pyjwt
import orjson
import pytest
from sqlalchemy import select

from carnet.app import Services
from carnet.audit.models import audit_event, audit_event_patient
from carnet.authn.clients import ClientKind
from carnet.authn.tokens import principal_from_token
from carnet.caller import Kind, Principal, RequestContext
from carnet.crypto.tokens import TokenError
from carnet.db.instants import utc_now
from carnet.fhir.errors import FhirError
from carnet.settings import Settings
from tests.spec.helpers import patient
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.oauth import APP_SCOPES, REDIRECT, OAuthEnv, oauth_env, redirect_query


@pytest.fixture
def env(services: Services) -> OAuthEnv:
    return oauth_env(services)


@pytest.fixture
def app_id(env: OAuthEnv) -> str:
    client, _ = env.clients.register(
        "Suivi tension", ClientKind.PUBLIC, APP_SCOPES.split(), redirect_uris=[REDIRECT]
    )
    return client.client_id


@dataclass(frozen=True)
class Approved:
    """A person approved the app: their account and the token request that exchanges the code,
    every field right (tests change one)."""

    account_id: str
    form: dict[str, str]


@pytest.fixture
def approved(env: OAuthEnv, app_id: str) -> Approved:
    account_id = env.login_person()
    verifier = secrets.token_urlsafe(48)
    back = env.approve(env.authorize_params(app_id, verifier))
    form = {
        "grant_type": "authorization_code",
        "code": back["code"],
        "redirect_uri": REDIRECT,
        "client_id": app_id,
        "code_verifier": verifier,
    }
    return Approved(account_id, form)


def _actions(services: Services) -> list[str]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(audit_event.c.body).order_by(audit_event.c.seq)).all()
    return [orjson.loads(r.body)["action"] for r in rows]


def _token(env: OAuthEnv, **data: Any) -> Any:
    return env.http.post("/oauth/token", data=data)


def _refresh(env: OAuthEnv, refresh_token: str, client_id: str, **extra: str) -> Any:
    return _token(
        env, grant_type="refresh_token", refresh_token=refresh_token, client_id=client_id, **extra
    )


def test_code_flow_gives_an_app_token_for_the_persons_record(env: OAuthEnv, app_id: str) -> None:
    account = env.login_person("pat-42")
    body = env.code_flow(app_id)
    assert body["token_type"] == "Bearer"
    assert body["patient"] == "pat-42"
    assert body["expires_in"] == int(60 * env.settings.access_token_minutes)
    assert set(body["scope"].split()) == {
        "patient/Observation.rs",
        "launch/patient",
        "openid",
        "fhirUser",
        "offline_access",
    }
    assert body["refresh_token"] and body["id_token"]
    signer = env.services.crypto.token_signer()
    principal = principal_from_token(signer, env.settings, body["access_token"])
    assert principal.kind is Kind.APP
    assert principal.subject == account
    assert principal.patient_id == "pat-42"
    assert principal.client_id == app_id
    assert "patient/Observation.rs" in principal.scopes
    claims = signer.verify(
        body["access_token"], audience=env.settings.token_audience, issuer=env.settings.issuer_url
    )
    assert claims["exp"] - claims["iat"] == int(60 * env.settings.access_token_minutes)
    rsa = next(k for k in signer.public_jwks()["keys"] if k["kty"] == "RSA")
    id_claims = pyjwt.decode(
        body["id_token"],
        pyjwt.PyJWK.from_dict(rsa),
        algorithms=["RS256"],
        audience=app_id,
        issuer=env.settings.issuer_url,
    )
    assert id_claims["nonce"] == "n-1"
    assert id_claims["fhirUser"].endswith("/Patient/pat-42")
    with pytest.raises(TokenError):  # an ID token is not an access token
        principal_from_token(signer, env.settings, body["id_token"])
    grants = env.oauth.grants("pat-42")
    assert [g.client_id for g in grants] == [app_id]
    assert {"grant", "token-issue"} <= set(_actions(env.services))


def test_the_person_approves_a_subset(env: OAuthEnv, app_id: str) -> None:
    env.login_person("pat-7")
    body = env.code_flow(app_id, scopes=["patient/Observation.rs", "launch/patient"])
    assert body["scope"] == "patient/Observation.rs launch/patient"
    assert "refresh_token" not in body and "id_token" not in body


def test_grant_screen_is_french_and_lists_the_requested_scopes(env: OAuthEnv, app_id: str) -> None:
    env.login_person()
    html, _ = env.grant_screen(env.authorize_params(app_id, secrets.token_urlsafe(48)))
    assert "Suivi tension" in html and "Autoriser" in html and "Refuser" in html
    for scope in ("patient/Observation.rs", "launch/patient", "offline_access"):
        assert scope in html


def test_refusing_redirects_with_access_denied(env: OAuthEnv, app_id: str) -> None:
    env.login_person()
    params = env.authorize_params(app_id, secrets.token_urlsafe(48))
    _, ticket = env.grant_screen(params)
    r = env.http.post(
        "/oauth/authorize", data={"ticket": ticket, "decision": "deny"}, follow_redirects=False
    )
    back = redirect_query(r.headers["location"])
    assert back["error"] == "access_denied" and back["state"] == params["state"]


def test_no_session_asks_to_log_in(env: OAuthEnv, app_id: str) -> None:
    params = env.authorize_params(app_id, secrets.token_urlsafe(48))
    r = env.http.get(f"/oauth/authorize?{urlencode(params)}", follow_redirects=False)
    assert r.status_code == 401 and "Connectez-vous" in r.text
    assert r.headers["x-frame-options"] == "DENY"


def test_a_ticket_from_another_session_is_refused(env: OAuthEnv, app_id: str) -> None:
    env.login_person("pat-1")
    _, ticket = env.grant_screen(env.authorize_params(app_id, secrets.token_urlsafe(48)))
    env.login_person("pat-2", login="other@example.org")  # another session in the jar
    r = env.http.post(
        "/oauth/authorize", data={"ticket": ticket, "decision": "approve"}, follow_redirects=False
    )
    assert r.status_code == 400


def test_wrong_code_verifier_and_reused_code(env: OAuthEnv, approved: Approved) -> None:
    r = _token(env, **{**approved.form, "code_verifier": secrets.token_urlsafe(48)})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = _token(env, **approved.form)  # the failed attempt spent the code
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_reused_code_revokes_what_it_gave(env: OAuthEnv, app_id: str, approved: Approved) -> None:
    first = _token(env, **approved.form)
    assert first.status_code == 200
    again = _token(env, **approved.form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    r = _refresh(env, first.json()["refresh_token"], app_id)
    assert r.json()["error"] == "invalid_grant"
    assert "code-replay" in _actions(env.services)


def test_wrong_redirect_uri_at_the_token_endpoint(env: OAuthEnv, approved: Approved) -> None:
    r = _token(env, **{**approved.form, "redirect_uri": "http://127.0.0.1:9000/other"})
    assert r.json()["error"] == "invalid_grant"


def test_unregistered_redirect_uri_is_never_followed(env: OAuthEnv, app_id: str) -> None:
    env.login_person()
    params = env.authorize_params(
        app_id, secrets.token_urlsafe(48), redirect_uri="https://evil.example/cb"
    )
    r = env.http.get(f"/oauth/authorize?{urlencode(params)}", follow_redirects=False)
    assert r.status_code == 400 and "location" not in r.headers


def test_unknown_client(env: OAuthEnv) -> None:
    env.login_person()
    params = env.authorize_params("nobody-here", secrets.token_urlsafe(48))
    r = env.http.get(f"/oauth/authorize?{urlencode(params)}", follow_redirects=False)
    assert r.status_code == 400 and "location" not in r.headers
    r = _token(
        env,
        grant_type="authorization_code",
        code="x",
        client_id="nobody-here",
        redirect_uri=REDIRECT,
        code_verifier="v" * 43,
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"scope": "patient/Observation.cruds"}, "invalid_scope"),
        ({"scope": "system/*.rs"}, "invalid_scope"),
        ({"scope": "patient/Observation.bogus"}, "invalid_scope"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"aud": "https://elsewhere.example/fhir"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_bad_authorisation_requests_are_redirected_with_the_error(
    env: OAuthEnv, app_id: str, extra: dict[str, str], error: str
) -> None:
    env.login_person()
    params = env.authorize_params(app_id, secrets.token_urlsafe(48), **extra)
    r = env.http.get(f"/oauth/authorize?{urlencode(params)}", follow_redirects=False)
    assert r.status_code == 303, r.text
    back = redirect_query(r.headers["location"])
    assert back["error"] == error and back["state"] == params["state"]


def test_expired_code(env: OAuthEnv, approved: Approved) -> None:
    env.oauth.clock = lambda: utc_now() + timedelta(minutes=2)
    r = _token(env, **approved.form)
    assert r.json() == {"error": "invalid_grant", "error_description": "authorization code expired"}


def test_refresh_rotates_and_a_replay_revokes_the_family(env: OAuthEnv, app_id: str) -> None:
    env.login_person("pat-9")
    first = env.code_flow(app_id)
    r1 = _refresh(env, first["refresh_token"], app_id)
    assert r1.status_code == 200, r1.text
    second = r1.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["patient"] == "pat-9"
    narrowed = _refresh(env, second["refresh_token"], app_id, scope="patient/Observation.rs")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "patient/Observation.rs"
    third = narrowed.json()
    # the first token is presented again: theft suspected, the whole family dies
    replay = _refresh(env, first["refresh_token"], app_id)
    assert replay.json()["error"] == "invalid_grant"
    latest = _refresh(env, third["refresh_token"], app_id)
    assert latest.json()["error"] == "invalid_grant"
    assert "refresh-replay" in _actions(env.services)


def test_refresh_cannot_widen_scopes(env: OAuthEnv, app_id: str) -> None:
    env.login_person()
    first = env.code_flow(app_id)
    r = _refresh(env, first["refresh_token"], app_id, scope="patient/*.rs")
    assert r.json()["error"] == "invalid_scope"


def test_revoking_the_grant_stops_refresh(env: OAuthEnv, app_id: str) -> None:
    account = env.login_person("pat-3")
    first = env.code_flow(app_id)
    page = env.http.get("/oauth/grants")
    assert page.status_code == 200 and "Suivi tension" in page.text
    ticket = re.search(r'name="ticket" value="([^"]+)"', page.text)
    assert ticket
    r = env.http.post(
        "/oauth/grants/revoke",
        data={"ticket": ticket.group(1), "client_id": app_id},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert env.oauth.grants("pat-3") == []
    r = _refresh(env, first["refresh_token"], app_id)
    assert r.json()["error"] == "invalid_grant"
    assert "grant-revoke" in _actions(env.services)
    assert account


@pytest.mark.both_backends
def test_closing_a_space_ends_its_apps_access(env: OAuthEnv, app_id: str) -> None:
    """A closed space leaves no token able to read the record: the person's grants to apps and
    their refresh tokens are revoked with the closure, each app's revocation audited in the
    record's history; the access tokens already issued stop at their next request (the policy
    reads the grant)."""
    services = env.services
    pid = services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    services.record.open_space(pid, ctx=AS_LOCAL_OPERATOR)
    account = env.login_person(pid)
    body = env.code_flow(app_id, scope="patient/*.rs launch/patient offline_access")
    app = principal_from_token(services.crypto.token_signer(), env.settings, body["access_token"])
    as_app = RequestContext(app, account, "127.0.0.1")
    assert services.fhir.read("Patient", pid, ctx=as_app).res_id == pid
    person = Principal(Kind.PERSON, account, patient_id=pid)
    services.record.close(pid, reason="request", ctx=RequestContext(person, account, "127.0.0.1"))
    assert env.oauth.grants(pid) == []
    assert _refresh(env, body["refresh_token"], app_id).json()["error"] == "invalid_grant"
    with pytest.raises(FhirError):
        services.fhir.read("Patient", pid, ctx=as_app)
    in_history = audit_event.join(
        audit_event_patient, audit_event_patient.c.seq == audit_event.c.seq
    )
    with services.engine.connect() as conn:
        bodies = [
            orjson.loads(r.body)
            for r in conn.execute(
                select(audit_event.c.body)
                .select_from(in_history)
                .where(audit_event_patient.c.patient_id == pid)
            )
        ]
    revoked = [b for b in bodies if b["action"] == "grant-revoke"]
    assert len(revoked) == 1 and revoked[0]["client"] == app_id


def test_revocation_of_access_and_refresh_tokens(env: OAuthEnv, app_id: str) -> None:
    env.login_person()
    body = env.code_flow(app_id)
    signer = env.services.crypto.token_signer()
    jti = signer.verify(
        body["access_token"], audience=env.settings.token_audience, issuer=env.settings.issuer_url
    )["jti"]
    assert not env.oauth.is_revoked(jti)
    r = env.http.post("/oauth/revoke", data={"token": body["access_token"], "client_id": app_id})
    assert r.status_code == 200
    assert env.oauth.is_revoked(jti)
    r = env.http.post(
        "/oauth/revoke",
        data={
            "token": body["refresh_token"],
            "client_id": app_id,
            "token_type_hint": "refresh_token",
        },
    )
    assert r.status_code == 200
    r = _refresh(env, body["refresh_token"], app_id)
    assert r.json()["error"] == "invalid_grant"
    # an unknown token is answered 200 (RFC 7009)
    assert (
        env.http.post("/oauth/revoke", data={"token": "nope", "client_id": app_id}).status_code
        == 200
    )
    assert "token-revoke" in _actions(env.services)


def test_another_client_cannot_revoke_or_use_the_token(env: OAuthEnv, app_id: str) -> None:
    other, _ = env.clients.register(
        "Autre", ClientKind.PUBLIC, ["patient/*.rs"], redirect_uris=[REDIRECT]
    )
    env.login_person()
    body = env.code_flow(app_id)
    env.http.post(
        "/oauth/revoke", data={"token": body["refresh_token"], "client_id": other.client_id}
    )
    r = _refresh(env, body["refresh_token"], other.client_id)
    assert r.json()["error"] == "invalid_grant"
    r = _refresh(env, body["refresh_token"], app_id)
    assert r.status_code == 200


def test_a_professional_gets_user_scopes_with_rpps(env: OAuthEnv, app_id: str) -> None:
    account = env.login_professional("10100000002", "physician")
    body = env.code_flow(app_id, scope="user/*.rs openid fhirUser launch/patient")
    assert body["scope"] == "user/*.rs openid fhirUser"  # no patient picker: no launch/patient
    principal = principal_from_token(
        env.services.crypto.token_signer(), env.settings, body["access_token"]
    )
    assert principal.kind is Kind.PROFESSIONAL
    assert (principal.subject, principal.rpps, principal.profession) == (
        account,
        "10100000002",
        "physician",
    )
    assert principal.client_id == app_id and principal.patient_id is None


def test_a_disabled_account_cannot_exchange_its_code(env: OAuthEnv, approved: Approved) -> None:
    env.accounts.set_disabled(approved.account_id)
    r = _token(env, **approved.form)
    assert r.json()["error"] == "invalid_grant"


def test_confidential_client_authenticates_with_its_secret(env: OAuthEnv) -> None:
    client, secret = env.clients.register(
        "Cabinet", ClientKind.CONFIDENTIAL, ["patient/*.rs"], redirect_uris=[REDIRECT]
    )
    assert secret
    env.login_person()
    verifier = secrets.token_urlsafe(48)
    back = env.approve(env.authorize_params(client.client_id, verifier, scope="patient/*.rs"))
    form = {
        "grant_type": "authorization_code",
        "code": back["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    r = env.http.post("/oauth/token", data={**form, "client_id": client.client_id})
    assert r.status_code == 401  # a confidential client must authenticate
    r = env.http.post("/oauth/token", data=form, auth=(client.client_id, "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = env.http.post("/oauth/token", data=form, auth=(client.client_id, secret))
    assert r.status_code == 200, r.text


def test_token_endpoint_refuses_unknown_grant_and_repeated_parameters(
    env: OAuthEnv, app_id: str
) -> None:
    r = _token(env, grant_type="password", client_id=app_id)
    assert r.json()["error"] == "unsupported_grant_type"
    r = env.http.post(
        "/oauth/token",
        content=f"grant_type=refresh_token&client_id={app_id}&client_id={app_id}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.json()["error"] == "invalid_request"
    assert r.headers["cache-control"] == "no-store"


def test_purge_forgets_what_expired(env: OAuthEnv, app_id: str) -> None:
    env.login_person()
    body = env.code_flow(app_id)
    env.http.post("/oauth/revoke", data={"token": body["access_token"], "client_id": app_id})
    assert env.oauth.purge() == 0
    env.oauth.clock = lambda: utc_now() + timedelta(days=env.settings.refresh_token_days + 1)
    assert env.oauth.purge() == 3  # the code, the refresh token, the revoked jti


def test_refresh_refused_for_wider_scope_is_not_spent(env: OAuthEnv, app_id: str) -> None:
    env.login_person("pat-5")
    first = env.code_flow(app_id)
    wider = _refresh(env, first["refresh_token"], app_id, scope="patient/*.rs")
    assert wider.json()["error"] == "invalid_scope"
    # The refused request spent nothing: the same token still refreshes, and no replay is seen.
    retry = _refresh(env, first["refresh_token"], app_id)
    assert retry.status_code == 200, retry.text
    assert "refresh-replay" not in _actions(env.services)


def _refusals(services: Services) -> list[dict[str, Any]]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(audit_event.c.body).order_by(audit_event.c.seq)).all()
    events = [orjson.loads(r.body) for r in rows]
    return [e for e in events if e["outcome"] >= 400]


def test_failed_client_authentication_at_the_token_endpoint_is_audited(
    env: OAuthEnv, app_id: str
) -> None:
    confidential, secret = env.clients.register(
        "Cabinet", ClientKind.CONFIDENTIAL, ["patient/*.rs"], redirect_uris=[REDIRECT]
    )
    assert secret
    wrong_secret = env.http.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT},
        auth=(confidential.client_id, "wrong-secret"),
    )
    assert wrong_secret.status_code == 401
    bad_assertion = _token(
        env,
        grant_type="client_credentials",
        scope="system/*.rs",
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion="not.a.jwt",
    )
    assert bad_assertion.status_code == 401
    env.login_person("pat-6")
    for wrong in ({"code_verifier": secrets.token_urlsafe(48)}, {"redirect_uri": REDIRECT + "x"}):
        verifier = secrets.token_urlsafe(48)
        back = env.approve(env.authorize_params(app_id, verifier))
        form = {
            "grant_type": "authorization_code",
            "code": back["code"],
            "redirect_uri": REDIRECT,
            "client_id": app_id,
            "code_verifier": verifier,
        }
        assert _token(env, **{**form, **wrong}).status_code == 400
    refusals = _refusals(env.services)
    assert [(e["action"], e["outcome"], e["rule"]) for e in refusals] == [
        ("token-issue", 401, "invalid_client"),
        ("token-issue", 401, "invalid_client"),
        ("token-issue", 400, "invalid_grant"),
        ("token-issue", 400, "invalid_grant"),
    ]
    assert refusals[0]["client"] == confidential.client_id
    assert refusals[2]["client"] == refusals[3]["client"] == app_id
    assert all(len(e["subjects"]) == 1 for e in refusals[2:])  # the patient's slice: they see it
    text = orjson.dumps(refusals).decode()
    assert "wrong-secret" not in text and "not.a.jwt" not in text


def test_access_tokens_live_at_most_300_seconds(env: OAuthEnv, app_id: str) -> None:
    env.login_person()
    assert env.code_flow(app_id)["expires_in"] == 300  # the default
    assert Settings.from_env({}).access_token_minutes == 5
    longer = Settings.from_env({"CARNET_ACCESS_TOKEN_MINUTES": "15"})
    assert longer.access_token_minutes == 5  # capped: a stolen token is useful minutes, not hours
    assert Settings.from_env({}, access_token_minutes="2").access_token_minutes == 2
