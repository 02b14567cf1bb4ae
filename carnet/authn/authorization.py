"""The authorisation endpoint of the OAuth server (``OAuthService`` in oauth.py composes it).

An authorisation request is checked against its client's registration (PKCE S256 mandatory, the
redirect URI registered, scopes the client may ask for, this server's FHIR base as ``aud``); the
user is offered the scopes that make sense for them (``patient/`` scopes for a person, ``user/`` for
a professional); their answer is either an approval, stored as a one-time code (its SHA-256 digest,
valid ``CODE_SECONDS``) that the token endpoint exchanges, with the person's grant (grants.py), or a
refusal. Both are audited (ids only). The code row in ``access_auth_code`` is the whole contract
with the token endpoint.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import Engine, insert

from carnet.audit.service import AuditService
from carnet.authn import smart_scopes
from carnet.authn.clients import ClientKind, ClientService
from carnet.authn.digests import digest
from carnet.authn.grants import Grants, audit_oauth
from carnet.authn.models import access_auth_code
from carnet.authn.smart import AuthorizationRequest, AuthorizeError, with_query
from carnet.caller import Kind, Principal
from carnet.db.engine import writing
from carnet.db.instants import Clock, stamp, utc_now
from carnet.settings import Settings

CODE_SECONDS = 60
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
PERSON_SCOPES = frozenset({"launch/patient", "openid", "fhirUser", "profile", "offline_access"})
PROFESSIONAL_SCOPES = frozenset({"openid", "fhirUser", "profile", "offline_access"})


class AuthorizationEndpoint:
    """Check an authorisation request, offer its scopes, record the user's approval or refusal."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clients: ClientService,
        audit: AuditService,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clients = clients
        self.audit = audit
        self.clock = clock

    def check_request(self, params: dict[str, str]) -> AuthorizationRequest:
        """Check an authorisation request; AuthorizeError says why and whether to redirect."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise AuthorizeError("invalid_request", "unknown client")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise AuthorizeError("invalid_request", "redirect_uri is not registered")
        state = params.get("state", "")

        def refuse(error: str, description: str) -> AuthorizeError:
            back = {"error": error, "error_description": description}
            if state:
                back["state"] = state
            return AuthorizeError(error, description, with_query(redirect_uri, back))

        if client.kind is ClientKind.BACKEND:
            raise refuse("unauthorized_client", "backend services use client credentials")
        if params.get("response_type") != "code":
            raise refuse("unsupported_response_type", "only the authorization code flow")
        if not state:
            raise refuse("invalid_request", "state is required")
        if params.get("code_challenge_method") != "S256":
            raise refuse("invalid_request", "PKCE with code_challenge_method S256 is required")
        challenge = params.get("code_challenge", "")
        if not _CHALLENGE.match(challenge):
            raise refuse("invalid_request", "code_challenge is not an S256 challenge")
        if params.get("aud", "").rstrip("/") != self.settings.token_audience:
            raise refuse("invalid_request", "aud is not this server's FHIR base")
        scopes = smart_scopes.split_scopes(params.get("scope"))
        if not scopes:
            raise refuse("invalid_scope", "no scope requested")
        for scope in scopes:
            if smart_scopes.context_of(scope) == "system" or not client.allows(scope):
                raise refuse("invalid_scope", "a requested scope is not allowed for this client")
        nonce = params.get("nonce") or None
        if nonce is not None and len(nonce) > 255:
            raise refuse("invalid_request", "nonce is too long")
        return AuthorizationRequest(
            client.client_id,
            client.name,
            redirect_uri,
            tuple(scopes),
            state,
            challenge,
            nonce,
        )

    @staticmethod
    def applicable(request: AuthorizationRequest, user: Principal) -> list[str]:
        """The requested scopes that make sense for this user (what the grant screen offers)."""
        if user.kind is Kind.PERSON:
            context, others = "patient", PERSON_SCOPES
        elif user.kind is Kind.PROFESSIONAL:
            context, others = "user", PROFESSIONAL_SCOPES
        else:
            return []
        return [s for s in request.scopes if s in others or smart_scopes.context_of(s) == context]

    def approve(
        self,
        request: AuthorizationRequest,
        user: Principal,
        approved: list[str],
        *,
        source: str,
    ) -> str:
        """Record the user's approval of ``approved`` (a subset of the applicable scopes) and
        return the redirect carrying the code."""
        offered = self.applicable(request, user)
        scopes = [s for s in offered if s in set(approved)]
        if not any(smart_scopes.context_of(s) for s in scopes):
            return self.deny(request, user, source=source)
        code = secrets.token_urlsafe(32)
        now = self.clock()
        patient_id = user.patient_id if user.kind is Kind.PERSON else None
        with writing(self.engine) as conn:
            conn.execute(
                insert(access_auth_code).values(
                    code_hash=digest(code),
                    client_id=request.client_id,
                    account_id=user.subject,
                    patient_id=patient_id,
                    scopes=" ".join(scopes),
                    redirect_uri=request.redirect_uri,
                    code_challenge=request.code_challenge,
                    nonce=request.nonce,
                    expires_at=stamp(now + timedelta(seconds=CODE_SECONDS)),
                    used=False,
                )
            )
            if patient_id is not None:
                Grants.record(conn, patient_id, request.client_id, scopes, now)
        audit_oauth(self.audit, "grant", user, request.client_id, patient_id, 200, source)
        return with_query(request.redirect_uri, {"code": code, "state": request.state})

    def deny(self, request: AuthorizationRequest, user: Principal, *, source: str) -> str:
        """The user refused: the redirect carrying ``access_denied``."""
        patient_id = user.patient_id if user.kind is Kind.PERSON else None
        audit_oauth(self.audit, "grant", user, request.client_id, patient_id, 403, source)
        error = {"error": "access_denied", "error_description": "the user refused"}
        return with_query(request.redirect_uri, {**error, "state": request.state})
