"""OAuth 2.0 clients: SMART apps (public with PKCE, or confidential) and backend services.

A client is registered by the operator (``carnet clients add``) with its redirect URIs and the
largest set of scopes it may ever be granted. Confidential clients get a random secret, shown once
and stored as an argon2id hash; a client with a JWKS (public keys only) authenticates with a
signed JWT assertion (``private_key_jwt``), which backend services must use.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc.jwk import KeySet
from sqlalchemy import Engine, delete, insert, select

from carnet.authn import smart_scopes
from carnet.authn.client_keys import KeySetError, check_jwks_url, check_public_jwks
from carnet.authn.models import access_client
from carnet.db.engine import writing
from carnet.db.instants import stamp, utc_now
from carnet.settings import Settings

# Client secrets are 256 random bits: the hash needs no memory hardness, only to be one-way.
_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{3,64}$")
# The jwks column holds the client's JWKS, or {"jwks_uri": URL} (a JWKS never has that member):
# a JWKS URL needed no new column.
JWKS_URL_FIELD = "jwks_uri"
ASSERTION_ALGORITHMS = ("RS384", "ES384", "RS256", "ES256", "Ed25519", "EdDSA")


class ClientKind(StrEnum):
    PUBLIC = "public"  # a browser or mobile app: PKCE, no secret
    CONFIDENTIAL = "confidential"  # a server-side app: a secret or a JWKS, plus PKCE
    BACKEND = "backend"  # a backend service: client credentials with a signed JWT assertion


class ClientError(ValueError):
    """A registration that cannot be accepted; the message names the rule, not the input."""


@dataclass(frozen=True)
class Client:
    """A registered client (never its secret)."""

    client_id: str
    kind: ClientKind
    name: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    jwks: dict[str, Any] | None
    has_secret: bool
    created_at: str

    def allows(self, scope: str) -> bool:
        """True if this client may be granted ``scope``."""
        return smart_scopes.covered(self.scopes, scope)

    jwks_url: str | None = None  # keys published at a URL instead (backend services)

    def key_set(self) -> KeySet | None:
        """The registered keys (a file given at registration); None for a JWKS URL."""
        return KeySet.import_key_set(self.jwks) if self.jwks else None  # type: ignore[arg-type]


def _check_redirect(uri: str) -> str:
    parts = urlsplit(uri)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.fragment:
        raise ClientError("a redirect URI has no fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and loopback):
        return uri
    if parts.scheme and parts.scheme not in ("http", "https", "javascript", "data", "file"):
        return uri  # a mobile app's private-use scheme (RFC 8252), e.g. fr.example.app:/cb
    raise ClientError("a redirect URI is https, http on loopback, or a private-use scheme")


def _check_jwks(jwks: dict[str, Any]) -> dict[str, Any]:
    try:
        return check_public_jwks(jwks)
    except KeySetError as exc:
        raise ClientError(str(exc)) from None


class ClientService:
    """Registers, finds, lists and removes OAuth clients; checks their secrets."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def register(
        self,
        name: str,
        kind: ClientKind | str,
        scopes: Iterable[str],
        *,
        redirect_uris: Iterable[str] = (),
        jwks: dict[str, Any] | None = None,
        jwks_url: str | None = None,
        client_id: str | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client; returns it and, for a confidential client without keys, its
        secret (shown once, stored hashed). Keys are a JWKS (``jwks``) or, on a host declared in
        ``jwks_url_hosts``, the https URL where the client publishes them (``jwks_url``)."""
        try:
            kind = ClientKind(kind)
        except ValueError:
            raise ClientError("a client is public, confidential or backend") from None
        client_id = client_id or secrets.token_urlsafe(18)
        if not _CLIENT_ID.match(client_id):
            raise ClientError("a client id is 3-64 letters, digits, dots, dashes or underscores")
        if not name.strip() or len(name) > 200:
            raise ClientError("a client has a name of at most 200 characters")
        scope_list = smart_scopes.split_scopes(" ".join(scopes))
        if not scope_list:
            raise ClientError("a client is allowed at least one scope")
        try:
            smart_scopes.validate(scope_list)
        except smart_scopes.ScopeError as exc:
            raise ClientError(str(exc)) from None
        contexts = {smart_scopes.context_of(s) for s in scope_list} - {None}
        uris = [_check_redirect(u) for u in redirect_uris]
        secret: str | None = None
        if jwks is not None and jwks_url is not None:
            raise ClientError("a client registers a JWKS or a JWKS URL, not both")
        if jwks_url is not None:
            try:
                check_jwks_url(jwks_url, self.settings.jwks_url_hosts)
            except KeySetError as exc:
                raise ClientError(str(exc)) from None
            keys_document: dict[str, Any] | None = {JWKS_URL_FIELD: jwks_url}
        else:
            keys_document = _check_jwks(jwks) if jwks is not None else None
        if kind is ClientKind.BACKEND:
            if keys_document is None:
                raise ClientError("a backend service registers the JWKS of its public keys")
            if contexts - {"system"} or uris:
                raise ClientError("a backend service has system/ scopes and no redirect URI")
        else:
            if not uris:
                raise ClientError("an app registers at least one redirect URI")
            if "system" in contexts:
                raise ClientError("system/ scopes are for backend services")
            if kind is ClientKind.PUBLIC and keys_document is not None:
                raise ClientError("a public client has no keys")
            if kind is ClientKind.CONFIDENTIAL and keys_document is None:
                secret = secrets.token_urlsafe(32)
        row = {
            "client_id": client_id,
            "kind": kind.value,
            "name": name.strip(),
            "redirect_uris": json.dumps(uris),
            "scopes": " ".join(scope_list),
            "secret_hash": _HASHER.hash(secret) if secret else None,
            "jwks": json.dumps(keys_document) if keys_document else None,
            "created_at": stamp(utc_now()),
        }
        with writing(self.engine) as conn:
            exists = conn.execute(
                select(access_client.c.client_id).where(access_client.c.client_id == client_id)
            ).first()
            if exists:
                raise ClientError("a client with this id is already registered")
            conn.execute(insert(access_client).values(**row))
        return _client(row), secret

    def get(self, client_id: str) -> Client | None:
        """The client, or None if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(access_client).where(access_client.c.client_id == client_id)
            ).first()
        return _client(row._asdict()) if row else None

    def all(self) -> list[Client]:
        """Every registered client, by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(access_client).order_by(access_client.c.client_id))
            return [_client(r._asdict()) for r in rows]

    def remove(self, client_id: str) -> bool:
        """Delete a client (its tokens stop refreshing: the token endpoint no longer knows it)."""
        with writing(self.engine) as conn:
            done = conn.execute(delete(access_client).where(access_client.c.client_id == client_id))
        return bool(done.rowcount)

    def check_secret(self, client_id: str, secret: str) -> bool:
        """True if ``secret`` is the confidential client's secret."""
        with self.engine.connect() as conn:
            stored = conn.execute(
                select(access_client.c.secret_hash).where(access_client.c.client_id == client_id)
            ).scalar()
        if not stored:
            return False
        try:
            return _HASHER.verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return False


def _client(row: dict[str, Any]) -> Client:
    keys = json.loads(row["jwks"]) if row["jwks"] else None
    jwks_url = keys.get(JWKS_URL_FIELD) if keys else None
    return Client(
        client_id=row["client_id"],
        kind=ClientKind(row["kind"]),
        name=row["name"],
        redirect_uris=tuple(json.loads(row["redirect_uris"] or "[]")),
        scopes=tuple(row["scopes"].split()),
        jwks=None if jwks_url else keys,
        jwks_url=jwks_url,
        has_secret=bool(row["secret_hash"]),
        created_at=row["created_at"],
    )
