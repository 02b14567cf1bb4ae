"""Signed JSON Web Tokens: Ed25519 (RFC 9864) for access tokens, tickets and, on request, ID
tokens; RS256 for OpenID Connect ID tokens (what SMART apps and common JWT libraries verify).

The Ed25519 key is derived from the master key and the RSA key is wrapped by it, so neither leaves
``carnet.crypto``; other domains get a ``TokenSigner`` that signs claims and verifies tokens, and
its public JWKS (both keys) for verifiers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry

ALGORITHM = "Ed25519"  # RFC 9864 fully-specified name (was "EdDSA")
RS256 = "RS256"
ID_TOKEN_ALGORITHMS = (RS256, ALGORITHM)


class TokenError(Exception):
    """A token that is malformed, forged, expired or meant for someone else. Says why, briefly."""


class TokenSigner:
    """Signs and verifies the tokens Carnet issues."""

    def __init__(
        self, seed: bytes, key_id: str, rsa_key: Callable[[], bytes] | None = None
    ) -> None:
        """``rsa_key`` gives the RS256 private key (PKCS#8 DER) when first needed: loading or
        generating it costs time that most processes (the CLI, most tests) never need to spend."""
        private = Ed25519PrivateKey.from_private_bytes(seed[:32])
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.key_id = key_id
        self._key = OKPKey.import_key(pem, {"kid": key_id, "use": "sig", "alg": ALGORITHM})
        self._load_rsa = rsa_key
        self._rsa: RSAKey | None = None
        self._rsa_lock = threading.Lock()

    def sign(self, claims: dict[str, Any], *, algorithm: str = ALGORITHM) -> str:
        """Sign ``claims`` with Ed25519 (the default) or RS256 (ID tokens)."""
        if algorithm == RS256:
            rsa = self._rsa_key()
            header = {"alg": RS256, "kid": str(rsa.kid), "typ": "JWT"}
            return jwt.encode(header, claims, rsa, algorithms=[RS256])
        if algorithm != ALGORITHM:
            raise ValueError(f"unsupported signing algorithm {algorithm}")
        header = {"alg": ALGORITHM, "kid": self.key_id, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def _rsa_key(self) -> RSAKey:
        with self._rsa_lock:
            if self._rsa is None:
                if self._load_rsa is None:
                    raise TokenError("this signer has no RSA key")
                der = self._load_rsa()
                public = RSAKey.import_key(der).as_dict(private=False)
                kid = f"{self.key_id.rsplit('-', 1)[0]}-{_thumbprint(public)[:12]}"
                self._rsa = RSAKey.import_key(der, {"kid": kid, "use": "sig", "alg": RS256})
            return self._rsa

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
        """The public keys: Ed25519 (access tokens, ID tokens on request) and RSA (ID tokens)."""
        keys = [self._key.as_dict(private=False)]
        if self._load_rsa is not None:
            keys.append(self._rsa_key().as_dict(private=False))
        return {"keys": keys}


def _thumbprint(public: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of a public RSA JWK: the kid changes if the key does."""
    return str(RSAKey.import_key(public).thumbprint())


def now() -> int:
    return int(time.time())
