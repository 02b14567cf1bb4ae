"""Authentication of every request: a bearer token or a portal session becomes a Principal.

Each endpoint has a guard in ``ROUTE_GUARDS`` (carnet/authn/routes.py), checked by an
application-wide dependency once the request is routed; an endpoint without one is refused (fail
closed), and the authorisation matrix test fails until it gets one. Refusals (401, 403) are audited
like any other access.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from carnet.audit.events import Actor, build_event
from carnet.audit.service import AuditService
from carnet.authn.routes import ROUTE_GUARDS, Guard
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from carnet.authn.tokens import principal_from_claims
from carnet.caller import Kind, Principal
from carnet.crypto.tokens import TokenError, TokenSigner
from carnet.fhir.errors import FhirError, Issue
from carnet.settings import Settings

log = logging.getLogger("carnet.authn")

SESSION_COOKIE = "carnet_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = "carnet"


@dataclass(frozen=True)
class AuthenticationError(Exception):
    status: int
    reason: str


class Authenticator:
    """Finds who is calling; raises ``AuthenticationError`` (401) when no valid credential is presented."""

    def __init__(
        self,
        settings: Settings,
        signer: TokenSigner,
        is_revoked: Callable[[str], bool],
        sessions: SessionService | None = None,
        accounts: AccountService | None = None,
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.is_revoked = is_revoked
        self.sessions = sessions
        self.accounts = accounts

    def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError(401, "the Authorization header must be 'Bearer <token>'")
            try:
                claims = self.signer.verify(
                    token.strip(),
                    audience=self.settings.token_audience,
                    issuer=self.settings.issuer_url,
                )
                principal = principal_from_claims(claims)
            except TokenError as exc:
                raise AuthenticationError(401, str(exc)) from None
            jti = claims.get("jti")
            if not isinstance(jti, str) or self.is_revoked(jti):
                raise AuthenticationError(401, "token rejected: revoked or without an id")
            return principal
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and self.sessions is not None and self.accounts is not None:
            from_session = self.sessions.principal(cookie, self.accounts)
            if from_session is not None:
                if request.method not in SAFE_METHODS and not self.sessions.check_csrf(
                    cookie, request.headers.get(CSRF_HEADER)
                ):
                    raise AuthenticationError(403, "missing or wrong CSRF token")
                return from_session
        raise AuthenticationError(401, "authentication required: a bearer token or a session")


def bearer_challenge(request: Request) -> str:
    """The ``WWW-Authenticate`` of a 401 (RFC 6750 section 3): ``invalid_token`` when a bearer
    token was sent and failed, ``invalid_request`` when the header was not a bearer token, the
    plain challenge when no credential was sent at all. Never says why a token failed."""
    header = request.headers.get("authorization")
    if header is None:
        return f'Bearer realm="{REALM}"'
    scheme, _, token = header.partition(" ")
    error = "invalid_token" if scheme.lower() == "bearer" and token.strip() else "invalid_request"
    return f'Bearer realm="{REALM}", error="{error}"'


def allowed(guard: Guard, principal: Principal) -> bool:
    if guard is Guard.SIGNED_IN:
        return True
    if guard is Guard.OPERATOR:
        return principal.kind is Kind.OPERATOR
    if guard is Guard.PERSON:
        return principal.kind is Kind.PERSON
    if guard is Guard.PROFESSIONAL:
        return principal.kind is Kind.PROFESSIONAL
    return False


def refusal(
    request: Request, audit: AuditService, status: int, reason: str, subject: str
) -> FhirError:
    """The audited refusal of a request at its guard (401 or 403)."""
    source = request.client.host if request.client else "unknown"
    actor = Actor(actor=subject, source=source, purpose="care", rule="authentication")
    audit.append([build_event(actor, "denied", None, status, [])])
    code = "login" if status == 401 else "forbidden"
    return FhirError(status, [Issue(code, reason)], rule="authentication")


def check_access(request: Request, authenticator: Authenticator, audit: AuditService) -> None:
    """The guard of the endpoint ``request`` was routed to (its path template in
    ``ROUTE_GUARDS``): returns with ``request.state.principal`` set, or raises the audited
    refusal. Run by the application-wide dependency ``carnet.dependencies.access_guard``, after
    routing, over the services of the application serving the request."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    rule = ROUTE_GUARDS.get(template or "")
    if rule is None:
        log.error("no access guard for endpoint %s: refused", template)
        raise refusal(request, audit, 403, "this endpoint has no access rule", "anonymous")
    if rule is Guard.PUBLIC:
        return
    try:
        principal = authenticator.principal(request)
    except AuthenticationError as error:
        raise refusal(request, audit, error.status, error.reason, "anonymous") from None
    if not allowed(rule, principal):
        raise refusal(
            request, audit, 403, "this endpoint is not for this kind of caller", principal.subject
        )
    request.state.principal = principal
