"""The SMART on FHIR v2 / OAuth 2.0 authorisation server: the token endpoint, revocation and the
person's grants here; the authorisation endpoint (request checks, consent, codes) in
authorization.py (``AuthorizationEndpoint``, composed as ``authorization``).

Authorisation code with PKCE (S256, mandatory) for apps acting for a person (``patient/`` scopes,
``launch/patient``) or a professional (``user/`` scopes); refresh tokens rotated on every use, a
replayed one revoking its whole family; client credentials with a signed JWT assertion for
backend services (``system/`` scopes); revocation (RFC 7009). A person's approval is a grant
(``access_grant``) they can list and revoke. Codes, refresh tokens and spent assertion jtis are kept
as SHA-256 digests. Every access token comes from ``issue_access_token``; every issue, refresh,
revocation and grant is audited (ids only). The grants themselves and the list of revoked access
tokens are kept by grants.py (``Grants``, ``RevocationList``).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from carnet.audit.events import Actor, Touched, build_event
from carnet.audit.service import AuditService
from carnet.authn import smart_scopes
from carnet.authn.authorization import AuthorizationEndpoint
from carnet.authn.client_auth import ClientAuthenticator, OAuthError, constant_equal
from carnet.authn.client_keys import KeySetFetcher
from carnet.authn.clients import Client, ClientKind, ClientService
from carnet.authn.digests import digest
from carnet.authn.grants import Grants, RevocationList, audit_oauth, end_refresh_tokens_in
from carnet.authn.models import (
    access_auth_code,
    access_refresh_token,
    access_revoked_token,
)
from carnet.authn.service import AccountError, AccountService
from carnet.authn.smart import Grant, s256
from carnet.authn.tokens import issue_access_token
from carnet.caller import Kind, Principal, RequestContext
from carnet.crypto.tokens import RS256, TokenError, TokenSigner
from carnet.db.engine import reading, writing
from carnet.db.instants import Clock, parse_stamp, stamp, utc_now
from carnet.settings import Settings

_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
REFRESH_SCOPES = frozenset({"offline_access", "online_access"})


class OAuthService:
    """The authorisation server: authorise, exchange, refresh, revoke, list and revoke grants."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        signer: TokenSigner,
        clients: ClientService,
        audit: AuditService,
        accounts: AccountService,
        *,
        clock: Clock = utc_now,
        key_sets: KeySetFetcher | None = None,
        revocations: RevocationList | None = None,
    ) -> None:
        """``key_sets`` fetches clients' keys from their JWKS URLs (a real HTTP client on the
        hosts of ``jwks_url_hosts`` unless one is given, e.g. with a fake transport);
        ``revocations`` is the revoked-token list the request guard also reads."""
        self.engine = engine
        self.settings = settings
        self.signer = signer
        self.clients = clients
        self.audit = audit
        self.accounts = accounts
        self.clock = clock
        self.granted = Grants(engine, audit)
        self.authorization = AuthorizationEndpoint(engine, settings, clients, audit, clock=clock)
        self.revocations = revocations or RevocationList(engine)
        self.token_endpoint = f"{settings.issuer_url}/oauth/token"
        self.key_sets = key_sets or KeySetFetcher(settings.jwks_url_hosts)
        self.authenticator = ClientAuthenticator(
            engine, clients, self.token_endpoint, clock, self.key_sets
        )

    # -- token endpoint --------------------------------------------------------------------------

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None = None, *, source: str
    ) -> dict[str, Any]:
        """Answer a token request (form fields, optional HTTP Basic credentials)."""
        grant_type = form.get("grant_type", "")
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            raise OAuthError("unsupported_grant_type", "unsupported grant_type")
        action = "token-refresh" if grant_type == "refresh_token" else "token-issue"
        client: Client | None = None
        try:
            client = self.authenticator.authenticate(form, basic)
            if grant_type == "authorization_code":
                return self._exchange_code(client, form, source)
            if grant_type == "refresh_token":
                return self._refresh(client, form, source)
            return self._client_credentials(client, form, source)
        except OAuthError as exc:
            self._audit_refusal(action, exc, client, form, basic, source)
            raise

    def _exchange_code(self, client: Client, form: dict[str, str], source: str) -> dict[str, Any]:
        if client.kind is ClientKind.BACKEND:
            raise OAuthError("unauthorized_client", "backend services use client credentials")
        code_hash = digest(form.get("code", ""))
        with writing(self.engine) as conn:
            row = conn.execute(
                select(access_auth_code).where(access_auth_code.c.code_hash == code_hash)
            ).first()
            if row is None:
                raise OAuthError("invalid_grant", "unknown authorization code")
            claimed = conn.execute(
                update(access_auth_code)
                .where(access_auth_code.c.code_hash == code_hash, ~access_auth_code.c.used)
                .values(used=True)
            ).rowcount
        if not claimed:  # a code used twice: revoke what the first use gave (RFC 6749 4.1.2)
            self._revoke_family(code_hash)
            self._audit_client("code-replay", client, row.patient_id, 400, source)
            raise OAuthError("invalid_grant", "authorization code already used")
        if row.client_id != client.client_id:
            raise OAuthError("invalid_grant", "authorization code issued to another client")
        patient = row.patient_id  # the refusals below are about this record: its slice shows them
        if form.get("redirect_uri", "") != row.redirect_uri:
            raise OAuthError(
                "invalid_grant",
                "redirect_uri differs from the authorization's",
                patient_id=patient,
            )
        if parse_stamp(row.expires_at) <= self.clock():
            raise OAuthError("invalid_grant", "authorization code expired", patient_id=patient)
        verifier = form.get("code_verifier", "")
        if not _VERIFIER.match(verifier) or not constant_equal(s256(verifier), row.code_challenge):
            raise OAuthError(
                "invalid_grant", "code_verifier does not match the challenge", patient_id=patient
            )
        scopes = tuple(row.scopes.split())
        principal = self._app_principal(client, row.account_id, row.patient_id, scopes)
        response = self._issue(principal, scopes, row.patient_id, "token-issue", source)
        if REFRESH_SCOPES & set(scopes):
            response["refresh_token"] = self._new_refresh(
                client, row.account_id, row.patient_id, scopes, family=code_hash
            )
        if "openid" in scopes:
            response["id_token"] = self._id_token(client, principal, row.nonce)
        return response

    def _refresh(self, client: Client, form: dict[str, str], source: str) -> dict[str, Any]:
        token_hash = digest(form.get("refresh_token", ""))
        with writing(self.engine) as conn:
            row = conn.execute(
                select(access_refresh_token).where(access_refresh_token.c.token_hash == token_hash)
            ).first()
            if row is None or row.client_id != client.client_id:
                raise OAuthError("invalid_grant", "unknown refresh token")
            scopes = tuple(row.scopes.split())
            asked = smart_scopes.split_scopes(form.get("scope")) or list(scopes)
            if not set(asked) <= set(scopes):  # refused before spending: the app may retry
                raise OAuthError(
                    "invalid_scope", "a refresh cannot widen the scopes", patient_id=row.patient_id
                )
            claimed = conn.execute(
                update(access_refresh_token)
                .where(
                    access_refresh_token.c.token_hash == token_hash,
                    ~access_refresh_token.c.revoked,
                )
                .values(revoked=True)
            ).rowcount
        if not claimed:  # a revoked (already rotated) token presented again: stolen, maybe
            self._revoke_family(row.family_id)
            self._audit_client("refresh-replay", client, row.patient_id, 400, source)
            raise OAuthError("invalid_grant", "refresh token already used or revoked")
        if parse_stamp(row.expires_at) <= self.clock():
            raise OAuthError("invalid_grant", "refresh token expired")
        if row.patient_id is not None and not self.granted.is_active(
            row.patient_id, client.client_id
        ):
            raise OAuthError("invalid_grant", "the grant was revoked")
        principal = self._app_principal(client, row.account_id, row.patient_id, tuple(asked))
        response = self._issue(principal, tuple(asked), row.patient_id, "token-refresh", source)
        response["refresh_token"] = self._new_refresh(
            client, row.account_id, row.patient_id, scopes, family=row.family_id
        )
        return response

    def _client_credentials(
        self, client: Client, form: dict[str, str], source: str
    ) -> dict[str, Any]:
        if client.kind is not ClientKind.BACKEND:
            raise OAuthError("unauthorized_client", "client credentials are for backend services")
        scopes = smart_scopes.split_scopes(form.get("scope"))
        if not scopes:
            raise OAuthError("invalid_scope", "scope is required")
        for scope in scopes:
            if smart_scopes.context_of(scope) != "system" or not client.allows(scope):
                raise OAuthError(
                    "invalid_scope", "a requested scope is not allowed for this client"
                )
        principal = Principal(
            Kind.BACKEND, client.client_id, client_id=client.client_id, scopes=frozenset(scopes)
        )
        return self._issue(principal, tuple(scopes), None, "token-issue", source)

    def _app_principal(
        self, client: Client, account_id: str, patient_id: str | None, scopes: tuple[str, ...]
    ) -> Principal:
        try:
            user = self.accounts.principal_for(account_id)
        except AccountError:
            raise OAuthError("invalid_grant", "the account is unknown or disabled") from None
        if user.kind is Kind.PERSON:
            return Principal(
                Kind.APP,
                account_id,
                patient_id=patient_id,
                client_id=client.client_id,
                scopes=frozenset(scopes),
            )
        if user.kind is Kind.PROFESSIONAL:
            return Principal(
                Kind.PROFESSIONAL,
                account_id,
                rpps=user.rpps,
                profession=user.profession,
                client_id=client.client_id,
                scopes=frozenset(scopes),
                organisation=user.organisation,
            )
        raise OAuthError("invalid_grant", "this account cannot grant access to an app")

    def _issue(
        self,
        principal: Principal,
        scopes: tuple[str, ...],
        patient_id: str | None,
        action: str,
        source: str,
    ) -> dict[str, Any]:
        token, claims = issue_access_token(self.signer, self.settings, principal)
        response: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": claims["exp"] - claims["iat"],
            "scope": " ".join(scopes),
        }
        if patient_id and "launch/patient" in scopes:
            response["patient"] = patient_id
        self._audit(action, principal, principal.client_id, patient_id, 200, source)
        return response

    def _new_refresh(
        self,
        client: Client,
        account_id: str,
        patient_id: str | None,
        scopes: tuple[str, ...],
        *,
        family: str,
    ) -> str:
        token = secrets.token_urlsafe(32)
        expires = self.clock() + timedelta(days=self.settings.refresh_token_days)
        with writing(self.engine) as conn:
            conn.execute(
                insert(access_refresh_token).values(
                    token_hash=digest(token),
                    client_id=client.client_id,
                    account_id=account_id,
                    patient_id=patient_id,
                    scopes=" ".join(scopes),
                    expires_at=stamp(expires),
                    revoked=False,
                    family_id=family,
                )
            )
        return token

    def _id_token(self, client: Client, principal: Principal, nonce: str | None) -> str:
        issued = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "iss": self.settings.issuer_url,
            "sub": principal.subject,
            "aud": client.client_id,
            "iat": issued,
            "exp": issued + int(60 * self.settings.access_token_minutes),
        }
        if nonce:
            claims["nonce"] = nonce
        if principal.kind is Kind.APP and principal.patient_id:
            claims["fhirUser"] = f"{self.settings.token_audience}/Patient/{principal.patient_id}"
        return self.signer.sign(claims, algorithm=RS256)

    def _revoke_family(self, family: str) -> None:
        with writing(self.engine) as conn:
            conn.execute(
                update(access_refresh_token)
                .where(access_refresh_token.c.family_id == family)
                .values(revoked=True)
            )

    # -- revocation (RFC 7009) -------------------------------------------------------------------

    def revoke(
        self, form: dict[str, str], basic: tuple[str, str] | None = None, *, source: str
    ) -> None:
        """Revoke a refresh token (and its family) or an access token (by jti). Unknown or
        foreign tokens are ignored, as RFC 7009 asks."""
        try:
            client = self.authenticator.authenticate(form, basic)
        except OAuthError as exc:
            self._audit_refusal("token-revoke", exc, None, form, basic, source)
            raise
        token = form.get("token", "")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        with reading(self.engine) as conn:
            row = conn.execute(
                select(access_refresh_token).where(
                    access_refresh_token.c.token_hash == digest(token)
                )
            ).first()
        if row is not None:
            if row.client_id == client.client_id:
                self._revoke_family(row.family_id)
                self._audit_client("token-revoke", client, row.patient_id, 200, source)
            return
        try:
            claims = self.signer.verify(
                token, audience=self.settings.token_audience, issuer=self.settings.issuer_url
            )
        except TokenError:
            return  # not ours, or already expired: nothing left to revoke
        if claims.get("client_id") != client.client_id:
            return
        self.revocations.add(str(claims["jti"]), datetime.fromtimestamp(int(claims["exp"]), UTC))
        patient = claims.get("patient")
        self._audit_client(
            "token-revoke", client, patient if isinstance(patient, str) else None, 200, source
        )

    def purge(self) -> int:
        """Delete expired codes, refresh tokens and revoked or spent jtis; returns how many."""
        moment = stamp(self.clock())
        with writing(self.engine) as conn:
            count = 0
            for table in (access_auth_code, access_refresh_token, access_revoked_token):
                count += conn.execute(delete(table).where(table.c.expires_at < moment)).rowcount
        return count

    # -- the person's grants (grants.py) -----------------------------------------------------------

    def grants(self, patient_id: str) -> list[Grant]:
        """The apps this patient granted access to (active grants only)."""
        return self.granted.of_patient(patient_id)

    def revoke_grant(self, patient_id: str, client_id: str, who: Principal, *, source: str) -> bool:
        """Withdraw a grant (``Grants.withdraw``): the app's refresh tokens for this patient stop
        at once. False if there was no active grant."""
        return self.granted.withdraw(patient_id, client_id, who, source=source)

    def end_refresh_tokens_in(self, conn: Connection, account_id: str, ctx: RequestContext) -> None:
        """A password reset: every app's refresh tokens for the account stop, in the reset's
        transaction, audited (grants.py ``end_refresh_tokens_in``)."""
        end_refresh_tokens_in(self.audit, conn, account_id, ctx)

    def is_revoked(self, jti: str) -> bool:
        """True if the access token with this jti was revoked before it expired."""
        return self.revocations.is_revoked(jti)

    # -- audit -----------------------------------------------------------------------------------

    def _audit(
        self,
        action: str,
        who: Principal,
        client_id: str | None,
        patient_id: str | None,
        outcome: int,
        source: str,
    ) -> None:
        audit_oauth(self.audit, action, who, client_id, patient_id, outcome, source)

    def _audit_refusal(
        self,
        action: str,
        exc: OAuthError,
        client: Client | None,
        form: dict[str, str],
        basic: tuple[str, str] | None,
        source: str,
    ) -> None:
        """A refused token or revocation request, ids only: the registered client it named (never
        an unknown id, a secret or an assertion), the patient when known, the OAuth error."""
        if client is None:
            claimed = basic[0] if basic else form.get("client_id", "")
            client = self.clients.get(claimed) if claimed else None
        client_id = client.client_id if client else None
        actor = Actor(
            actor=client_id or "anonymous",
            source=source,
            purpose="access",
            role=Principal(Kind.APP, client_id).role if client_id else None,
            client_id=client_id,
            rule=exc.error,
        )
        patient = exc.patient_id
        touched = [Touched("Patient", patient, None, patient)] if patient else []
        self.audit.append([build_event(actor, action, None, exc.status, touched)])

    def _audit_client(
        self, action: str, client: Client, patient_id: str | None, outcome: int, source: str
    ) -> None:
        who = Principal(Kind.APP, client.client_id, client_id=client.client_id)
        self._audit(action, who, client.client_id, patient_id, outcome, source)
