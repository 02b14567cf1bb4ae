"""How a client proves who it is at the token and revocation endpoints.

- a public client names itself (``client_id``) and proves nothing: PKCE protects its codes;
- a confidential client with a secret: HTTP Basic (``client_secret_basic``) or form fields
  (``client_secret_post``);
- a client with a JWKS (backend services, asymmetric confidential apps): a JWT assertion
  (``private_key_jwt``, RFC 7523) signed with one of its registered keys (a JWKS, or the keys
  published at its registered JWKS URL; a ``jku`` header naming any other URL is refused), whose
  ``iss`` and ``sub`` are its client id, ``aud`` the token endpoint, ``exp`` at most five minutes
  ahead and ``jti`` never seen before (spent jtis are kept, hashed, until they expire).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from carnet.authn.client_keys import KeySetError, KeySetFetcher
from carnet.authn.clients import ASSERTION_ALGORITHMS, Client, ClientKind, ClientService
from carnet.authn.models import access_revoked_token
from carnet.db.engine import writing
from carnet.db.instants import Clock, stamp

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_SECONDS = 300


@dataclass
class OAuthError(Exception):
    """An OAuth 2.0 error response (RFC 6749 section 5.2): code, description, HTTP status."""

    error: str
    description: str
    status: int = 400
    patient_id: str | None = None  # the record concerned, for the audit event (never shown)

    def __str__(self) -> str:
        return f"{self.error}: {self.description}"

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def assertion_key(client_id: str, jti: str) -> str:
    """What the revoked-token table keeps of a spent assertion jti (never an access-token jti)."""
    return sha256(f"assertion\x00{client_id}\x00{jti}".encode()).hexdigest()


class ClientAuthenticator:
    """Authenticates the client of a token or revocation request."""

    def __init__(
        self,
        engine: Engine,
        clients: ClientService,
        token_endpoint: str,
        clock: Clock,
        key_sets: KeySetFetcher,
    ) -> None:
        self.engine = engine
        self.clients = clients
        self.token_endpoint = token_endpoint
        self.clock = clock
        self.key_sets = key_sets

    def authenticate(self, form: dict[str, str], basic: tuple[str, str] | None) -> Client:
        """The client making the request; OAuthError ``invalid_client`` (401) otherwise."""
        if form.get("client_assertion") or form.get("client_assertion_type"):
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise OAuthError("invalid_client", "unsupported client assertion type", 401)
            client = self.verify_assertion(form.get("client_assertion", ""))
            if form.get("client_id") not in (None, "", client.client_id):
                raise OAuthError("invalid_client", "client_id does not match the assertion", 401)
            return client
        if basic is not None or "client_secret" in form:
            if basic is not None:
                client_id, secret = basic
            else:
                client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            found = self.clients.get(client_id)
            if found is None or not found.has_secret:
                raise OAuthError("invalid_client", "unknown client or wrong credentials", 401)
            if not self.clients.check_secret(client_id, secret):
                raise OAuthError("invalid_client", "unknown client or wrong credentials", 401)
            return found
        public = self.clients.get(form.get("client_id", ""))
        if public is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if public.kind is not ClientKind.PUBLIC:
            raise OAuthError("invalid_client", "this client must authenticate", 401)
        return public

    def verify_assertion(self, assertion: str) -> Client:
        """The client that signed ``assertion``, after checking it and spending its jti."""
        try:
            # Read (not trust) the issuer first, to know whose keys verify the signature.
            unverified = jws.extract_compact(assertion.encode())
            unverified_claims = json.loads(unverified.payload)
        except (JoseError, ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed client assertion", 401) from None
        if not isinstance(unverified_claims, dict):
            raise OAuthError("invalid_client", "malformed client assertion", 401)
        client_id = unverified_claims.get("iss")
        client = self.clients.get(client_id) if isinstance(client_id, str) else None
        if client is None:
            raise OAuthError("invalid_client", "unknown client or no registered keys", 401)
        keys = self._keys(client, unverified.headers())
        try:
            token = jwt.decode(assertion, keys, algorithms=list(ASSERTION_ALGORITHMS))
        except (JoseError, ValueError):
            raise OAuthError("invalid_client", "client assertion signature rejected", 401) from None
        claims = dict(token.claims)
        now = self.clock()
        registry = JWTClaimsRegistry(
            now=int(now.timestamp()),
            leeway=30,
            iss={"essential": True, "value": client.client_id},
            sub={"essential": True, "value": client.client_id},
            aud={"essential": True, "value": self.token_endpoint},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise OAuthError(
                "invalid_client", f"client assertion rejected: {exc.description}", 401
            ) from None
        expires = _expiry(claims, now)
        self._spend(client.client_id, str(claims["jti"]), expires)
        return client

    def _keys(self, client: Client, header: dict[str, Any]) -> KeySet:
        """The keys that may verify ``client``'s assertion. A ``jku`` header must name the JWKS
        URL registered for the client (SMART Backend Services: otherwise verification fails),
        so an assertion can never point us at keys of its own choosing."""
        jku = header.get("jku")
        if jku is not None and (client.jwks_url is None or jku != client.jwks_url):
            raise OAuthError("invalid_client", "jku is not the client's registered JWKS URL", 401)
        if client.jwks_url is not None:
            kid = header.get("kid")
            try:
                fetched = self.key_sets.key_set(
                    client.jwks_url, wanted_kid=kid if isinstance(kid, str) else None
                )
            except KeySetError as exc:
                raise OAuthError("invalid_client", f"client keys unavailable: {exc}", 401) from None
            return KeySet.import_key_set(fetched)  # type: ignore[arg-type]
        keys = client.key_set()
        if keys is None:
            raise OAuthError("invalid_client", "unknown client or no registered keys", 401)
        return keys

    def _spend(self, client_id: str, jti: str, expires: datetime) -> None:
        try:
            with writing(self.engine) as conn:
                conn.execute(
                    insert(access_revoked_token).values(
                        jti=assertion_key(client_id, jti), expires_at=stamp(expires)
                    )
                )
        except IntegrityError:
            raise OAuthError("invalid_client", "client assertion already used", 401) from None


def _expiry(claims: dict[str, Any], now: datetime) -> datetime:
    exp = claims["exp"]
    if not isinstance(exp, int | float):
        raise OAuthError("invalid_client", "client assertion exp is not a number", 401)
    expires = datetime.fromtimestamp(exp, now.tzinfo)
    if expires > now + timedelta(seconds=MAX_ASSERTION_SECONDS + 30):
        raise OAuthError("invalid_client", "client assertion lives longer than 5 minutes", 401)
    return expires


def constant_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
