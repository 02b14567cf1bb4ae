"""Negative tests of the bearer path: every credential that is not a valid access token for this
server is refused with 401, an OperationOutcome and ``WWW-Authenticate: Bearer``, writes nothing and
is audited; a valid token whose scopes do not cover the interaction gets 403, audited too. Runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, insert, select

from carnet.app import Services, create_app
from carnet.authn.models import access_grant, access_revoked_token
from carnet.authn.tokens import issue_access_token
from carnet.caller import Kind, Principal
from carnet.crypto.tokens import TokenSigner
from carnet.fhir.models import resource
from tests.spec.helpers import FHIR_JSON, observation, patient
from tests.support.audit_log import logged_events
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.caller import AS_LOCAL_OPERATOR

PERSON_SUBJECT = "acct-person"
APP_SCOPES = frozenset({"patient/Observation.rs", "launch/patient"})


@dataclass
class Env:
    services: Services
    client: TestClient
    patient_id: str
    obs_id: str

    @property
    def signer(self) -> TokenSigner:
        return self.services.crypto.token_signer()

    def claims(self, principal: Principal = TEST_OPERATOR, **changes: Any) -> dict[str, Any]:
        """The claims of a valid token for ``principal``, with ``changes`` (None removes a claim)."""
        _, claims = issue_access_token(self.signer, self.services.settings, principal)
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: dict[str, Any]) -> str:
        return self.signer.sign(claims)

    def valid(self, principal: Principal = TEST_OPERATOR) -> str:
        token, _ = issue_access_token(self.signer, self.services.settings, principal)
        return token


@pytest.fixture
def env(services: Services) -> Iterator[Env]:
    pid = services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    oid = services.fhir.create("Observation", observation(pid), ctx=AS_LOCAL_OPERATOR).stored.res_id
    with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c:
        yield Env(services, c, pid, oid)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(env: Env) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": env.signer.key_id}
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(env.claims()))}."


def _hmac_with_public_key(env: Env) -> str:
    """Algorithm confusion: HS256 keyed with the server's published public key."""
    public = env.signer.public_jwks()["keys"][0]["x"]
    header = {"alg": "HS256", "typ": "JWT", "kid": env.signer.key_id}
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(env.claims()))}"
    mac = hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _same_key_other_kid(env: Env) -> str:
    """Signed with the server's own key, but under a key id it does not use."""
    seed = env.services.crypto.keyring.derive("carnet/token-signing/v1")
    ed25519 = TokenSigner(seed, env.signer.key_id).public_jwks()["keys"]
    assert ed25519 == env.signer.public_jwks()["keys"][:1]
    return TokenSigner(seed, key_id="retired-t0").sign(env.claims())


def _flipped(env: Env) -> str:
    head, payload, signature = env.valid().split(".")
    middle = len(payload) // 2
    swapped = "B" if payload[middle] == "A" else "A"
    return ".".join((head, payload[:middle] + swapped + payload[middle + 1 :], signature))


def _escalated(env: Env) -> str:
    """A person's token whose payload is rewritten to an operator's, the signature kept."""
    person = Principal(Kind.PERSON, PERSON_SUBJECT, patient_id=env.patient_id)
    head, _, signature = env.valid(person).split(".")
    claims = env.claims(person, kind="operator", scope="system/*.*", patient=None)
    return ".".join((head, _b64(orjson.dumps(claims)), signature))


def _revoked(env: Env) -> str:
    token, claims = issue_access_token(env.signer, env.services.settings, TEST_OPERATOR)
    with env.services.engine.begin() as conn:
        conn.execute(
            insert(access_revoked_token).values(
                jti=claims["jti"], expires_at="2099-01-01T00:00:00.000000Z"
            )
        )
    return token


def _expired(env: Env) -> str:
    token, _ = issue_access_token(env.signer, env.services.settings, TEST_OPERATOR, minutes=-5)
    return token


def _other_key(key_id: str | None) -> Callable[[Env], str]:
    def make(env: Env) -> str:
        forger = TokenSigner(b"\x07" * 32, key_id=key_id or env.signer.key_id)
        return forger.sign(env.claims())

    return make


def _bearer(make: Callable[[Env], str]) -> Callable[[Env], str]:
    return lambda env: f"Bearer {make(env)}"


def _signed(**changes: Any) -> Callable[[Env], str]:
    return _bearer(lambda env: env.sign(env.claims(**changes)))


PRO = Principal(Kind.PROFESSIONAL, "pro-x", rpps="10000000009", profession="physician")

# name -> the Authorization header value
BAD_CREDENTIALS: dict[str, Callable[[Env], str | bytes]] = {
    "expired": _bearer(_expired),
    "other-key-same-kid": _bearer(_other_key(None)),
    "other-key-other-kid": _bearer(_other_key("forged-t1")),
    "wrong-audience": _signed(aud="https://elsewhere.example/fhir"),
    "wrong-issuer": _signed(iss="https://elsewhere.example"),
    "no-audience": _signed(aud=None),
    "no-issuer": _signed(iss=None),
    "no-expiry": _signed(exp=None),
    "no-kind": _signed(kind=None),
    "unknown-kind": _signed(kind="superuser"),
    "no-subject": _signed(sub=None),
    "no-jti": _signed(jti=None),
    "scope-not-a-string": _signed(scope=["system/*.*"]),
    "professional-without-rpps": _bearer(lambda env: env.sign(env.claims(PRO, rpps=None))),
    "person-without-patient": _bearer(
        lambda env: env.sign(
            env.claims(Principal(Kind.PERSON, PERSON_SUBJECT, patient_id="p"), patient=None)
        )
    ),
    "alg-none": _bearer(_unsigned),
    # The ID-token key (RS256, published in the same JWKS) never signs an access token.
    "signed-with-the-id-token-key": _bearer(
        lambda env: env.signer.sign(env.claims(), algorithm="RS256")
    ),
    "alg-hs256-public-key": _bearer(_hmac_with_public_key),
    "same-key-other-kid": _bearer(_same_key_other_kid),
    "tampered-one-char": _bearer(_flipped),
    "tampered-claims": _bearer(_escalated),
    "revoked-jti": _bearer(_revoked),
    "garbage": lambda env: "Bearer not-a-token",
    "garbage-three-parts": lambda env: "Bearer a.b.c",
    "garbage-empty-parts": lambda env: "Bearer ..",
    "garbage-long": lambda env: "Bearer " + "x" * 4000,
    "garbage-latin-1": lambda env: "Bearer \u00e9\u00e8.\u00ea.\u00eb".encode("latin-1"),
    "bearer-without-token": lambda env: "Bearer ",
    "bearer-alone": lambda env: "Bearer",
    "two-tokens": lambda env: f"Bearer {env.valid()} {env.valid()}",
    "basic-scheme": lambda env: "Basic " + base64.b64encode(b"operator:secret").decode(),
    "basic-with-valid-jwt": lambda env: f"Basic {env.valid()}",
    "token-without-scheme": lambda env: env.valid(),
}


def _count(services: Services, table: Any) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _requests(env: Env) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", "/fhir/Patient", {}),
        ("GET", f"/fhir/Observation/{env.obs_id}", {}),
        (
            "POST",
            "/fhir/Observation",
            {"json": observation(env.patient_id), "headers": FHIR_JSON},
        ),
    ]


def _send(
    env: Env, method: str, url: str, authorization: str | bytes | None, **kw: Any
) -> Response:
    headers = {k.encode(): v.encode() for k, v in kw.pop("headers", {}).items()}
    if authorization is not None:
        raw = authorization.encode() if isinstance(authorization, str) else authorization
        headers[b"authorization"] = raw
    return env.client.request(method, url, headers=headers, **kw)


def _assert_refused(
    env: Env, response: Response, status: int, events: list[dict[str, Any]]
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert outcome["issue"][0]["code"] == ("login" if status == 401 else "forbidden")
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer ")
    else:
        assert "www-authenticate" not in response.headers
    assert [e["outcome"] for e in events] == [status], events


def _check_refusal(env: Env, authorization: str | bytes | None, name: str = "none") -> None:
    for method, url, kw in _requests(env):
        resources = _count(env.services, resource)
        before = len(logged_events(env.services))
        r = _send(env, method, url, authorization, **kw)
        try:
            _assert_refused(env, r, 401, logged_events(env.services)[before:])
        except AssertionError as exc:
            raise AssertionError(f"{name}: {method} {url}") from exc
        assert _count(env.services, resource) == resources, name  # nothing written


def test_bad_credentials_are_refused_with_401(env: Env) -> None:
    """Each bad credential in turn (one world per backend, to keep the file quick)."""
    for name in sorted(BAD_CREDENTIALS):
        _check_refusal(env, BAD_CREDENTIALS[name](env), name)
    # No session either: the anonymous actor is what the audit log records.
    denied = [e for e in logged_events(env.services) if e["outcome"] == 401]
    assert len(denied) == 3 * len(BAD_CREDENTIALS)
    assert {e["actor"] for e in denied} == {"anonymous"}
    assert {e["action"] for e in denied} == {"denied"}


def test_no_credential_is_refused_with_401(env: Env) -> None:
    _check_refusal(env, None)


def test_the_same_requests_pass_with_a_valid_token(env: Env) -> None:
    """The control: the refusals above are about the credential, not the requests."""
    expected = {"GET": 200, "POST": 201}
    for method, url, kw in _requests(env):
        r = _send(env, method, url, f"Bearer {env.valid()}", **kw)
        assert r.status_code == expected[method], r.text
    # The scheme is case-insensitive (RFC 6750 / RFC 9110).
    assert _send(env, "GET", "/fhir/Patient", f"bearer {env.valid()}").status_code == 200


def test_a_token_revoked_after_use_stops_working(env: Env) -> None:
    token, claims = issue_access_token(env.signer, env.services.settings, TEST_OPERATOR)
    assert _send(env, "GET", "/fhir/Patient", f"Bearer {token}").status_code == 200
    with env.services.engine.begin() as conn:
        conn.execute(
            insert(access_revoked_token).values(
                jti=claims["jti"], expires_at="2099-01-01T00:00:00.000000Z"
            )
        )
    _check_refusal(env, f"Bearer {token}")


# -- valid tokens, wrong scopes: 403 ----------------------------------------------------------------


def _check_forbidden(env: Env, principal: Principal, method: str, url: str, **kw: Any) -> None:
    resources = _count(env.services, resource)
    before = len(logged_events(env.services))
    r = _send(env, method, url, f"Bearer {env.valid(principal)}", **kw)
    events = logged_events(env.services)[before:]
    _assert_refused(env, r, 403, events)
    assert events[0]["actor"] == principal.subject
    assert _count(env.services, resource) == resources


def test_an_app_cannot_go_beyond_its_scopes(env: Env) -> None:
    with env.services.engine.begin() as conn:
        conn.execute(
            access_grant.insert().values(
                patient_id=env.patient_id,
                client_id="diabetes-app",
                scopes=" ".join(sorted(APP_SCOPES)),
                granted_at="2026-01-01T00:00:00.000000Z",
                revoked=False,
            )
        )
    app = Principal(
        Kind.APP,
        "diabetes-app",
        patient_id=env.patient_id,
        client_id="diabetes-app",
        scopes=APP_SCOPES,
    )
    # Within its scopes: read and search Observations of its patient.
    r = _send(env, "GET", f"/fhir/Observation?patient={env.patient_id}", f"Bearer {env.valid(app)}")
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [env.obs_id]
    # Beyond them: another type, and any write.
    _check_forbidden(env, app, "GET", f"/fhir/Condition?patient={env.patient_id}")
    _check_forbidden(
        env, app, "POST", "/fhir/Observation", json=observation(env.patient_id), headers=FHIR_JSON
    )


def test_a_backend_with_read_scopes_reads_but_does_not_write(env: Env) -> None:
    backend = Principal(Kind.BACKEND, "lab-backend", client_id="lab-backend",
                        scopes=frozenset({"system/Patient.rs"}))  # fmt: skip
    r = _send(env, "GET", "/fhir/Patient", f"Bearer {env.valid(backend)}")
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [env.patient_id]
    _check_forbidden(env, backend, "POST", "/fhir/Patient", json=patient(), headers=FHIR_JSON)
    _check_forbidden(env, backend, "GET", f"/fhir/Observation/{env.obs_id}")


def test_an_operator_with_read_scopes_cannot_write(env: Env) -> None:
    reader = Principal(Kind.OPERATOR, "operator:reader", scopes=frozenset({"system/*.rs"}))
    r = _send(env, "GET", f"/fhir/Observation/{env.obs_id}", f"Bearer {env.valid(reader)}")
    assert r.status_code == 200, r.text
    _check_forbidden(env, reader, "POST", "/fhir/Patient", json=patient(), headers=FHIR_JSON)
    _check_forbidden(
        env,
        reader,
        "POST",
        "/fhir/Observation",
        json=observation(env.patient_id),
        headers=FHIR_JSON,
    )
    body = env.client.get(f"/fhir/Observation/{env.obs_id}", headers=bearer(env.services)).json()
    body["status"] = "amended"
    _check_forbidden(
        env, reader, "PUT", f"/fhir/Observation/{env.obs_id}", json=body, headers=FHIR_JSON
    )
    _check_forbidden(env, reader, "DELETE", f"/fhir/Observation/{env.obs_id}")


def test_unauthenticated_answer_names_invalid_token(env: Env) -> None:
    """RFC 6750 section 3: a bearer token that fails is named ``invalid_token``; a request that
    sent no credential at all gets the plain challenge, without an error code."""
    for name in ("expired", "wrong-audience", "revoked-jti", "tampered-one-char", "garbage"):
        r = _send(env, "GET", "/fhir/Patient", BAD_CREDENTIALS[name](env))
        assert r.status_code == 401, name
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith("Bearer "), name
        assert 'error="invalid_token"' in challenge, name
    anonymous = _send(env, "GET", "/fhir/Patient", None)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="carnet"'
