"""Signed JSON Web Tokens (Ed25519, RFC 9864) for access tokens and OpenID Connect ID tokens.

The signing key is derived from the master key, so it never leaves ``carnet.crypto``; other domains
get a ``TokenSigner`` that signs claims and verifies tokens, and its public JWKS for verifiers.
"""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from joserfc.jwt import JWTClaimsRegistry

ALGORITHM = "Ed25519"  # RFC 9864 fully-specified name (was "EdDSA")


class TokenError(Exception):
    """A token that is malformed, forged, expired or meant for someone else. Says why, briefly."""


class TokenSigner:
    """Signs and verifies the tokens Carnet issues."""

    def __init__(self, seed: bytes, key_id: str) -> None:
        private = Ed25519PrivateKey.from_private_bytes(seed[:32])
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.key_id = key_id
        self._key = OKPKey.import_key(pem, {"kid": key_id, "use": "sig", "alg": ALGORITHM})

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": ALGORITHM, "kid": self.key_id, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def verify(self, token: str, *, audience: str, issuer: str, leeway: int = 30) -> dict[str, Any]:
        """The claims of a token this signer issued for ``audience``; TokenError otherwise."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise TokenError(f"token rejected: {type(exc).__name__}") from None
        if decoded.header.get("kid") != self.key_id:
            raise TokenError("token rejected: unknown key id")
        registry = JWTClaimsRegistry(
            leeway=leeway,
            exp={"essential": True},
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise TokenError(f"token rejected: {exc.error}") from None
        return dict(decoded.claims)

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [self._key.as_dict(private=False)]}


def now() -> int:
    return int(time.time())
