"""Access tokens: what a bearer token says about its holder, and how a Principal becomes one.

Claims (JWT, Ed25519, signed by ``carnet.crypto``): ``iss`` (settings.issuer_url), ``aud``
(settings.token_audience), ``sub`` (account or client id), ``exp``/``iat``/``jti``, ``kind`` (a
``Kind``), ``scope`` (space-separated SMART scopes), and when they apply ``patient``, ``rpps``,
``profession``, ``client_id``, ``org``. Every issuer in Carnet (the SMART authorisation server, the
operator CLI, the professionals' login) goes through ``issue_access_token``; every request goes
through ``principal_from_token``.
"""

from __future__ import annotations

import uuid
from typing import Any

from carnet.caller import Kind, Principal
from carnet.crypto.tokens import TokenError, TokenSigner, now
from carnet.settings import Settings


def issue_access_token(
    signer: TokenSigner, settings: Settings, principal: Principal, *, minutes: float | None = None
) -> tuple[str, dict[str, Any]]:
    """A signed, short-lived access token for ``principal`` and its claims."""
    issued = now()
    lifetime = int(60 * (settings.access_token_minutes if minutes is None else minutes))
    claims: dict[str, Any] = {
        "iss": settings.issuer_url,
        "aud": settings.token_audience,
        "sub": principal.subject,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": uuid.uuid4().hex,
        "kind": principal.kind.value,
        "scope": " ".join(sorted(principal.scopes)),
    }
    optional = {
        "patient": principal.patient_id,
        "rpps": principal.rpps,
        "profession": principal.profession,
        "client_id": principal.client_id,
        "org": principal.organisation,
    }
    claims.update({k: v for k, v in optional.items() if v})
    return signer.sign(claims), claims


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The caller a verified token describes; TokenError if the claims do not make one."""
    try:
        kind = Kind(str(claims.get("kind")))
    except ValueError:
        raise TokenError("token rejected: unknown caller kind") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenError("token rejected: no subject")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise TokenError("token rejected: scope is not a string")

    def text(name: str) -> str | None:
        value = claims.get(name)
        return value if isinstance(value, str) and value else None

    principal = Principal(
        kind=kind,
        subject=subject,
        patient_id=text("patient"),
        rpps=text("rpps"),
        profession=text("profession"),
        client_id=text("client_id"),
        scopes=frozenset(scope.split()),
        organisation=text("org"),
    )
    if kind is Kind.PROFESSIONAL and not principal.rpps:
        raise TokenError("token rejected: a professional token carries an RPPS number")
    if kind is Kind.PERSON and not principal.patient_id:
        raise TokenError("token rejected: a person token names the person's record")
    return principal


def principal_from_token(signer: TokenSigner, settings: Settings, token: str) -> Principal:
    """Verify a bearer token issued by this server for its FHIR API and return its caller."""
    claims = signer.verify(token, audience=settings.token_audience, issuer=settings.issuer_url)
    return principal_from_claims(claims)
