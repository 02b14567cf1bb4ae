"""Short-lived signed tickets that carry state through the browser: the grant screen's request
(bound to the portal session, so it is also its CSRF token) and the professionals' login state
(state, nonce and PKCE verifier, in a cookie). Tickets are JWTs signed by the token signer with
an audience of their own per purpose, so none can pass for an access token or another ticket."""

from __future__ import annotations

import hmac
import time
from typing import Any

from carnet.crypto.tokens import TokenError, TokenSigner
from carnet.settings import Settings

TICKET_SECONDS = 600


class Tickets:
    """Issues and checks tickets for one purpose each (``authorize``, ``grants``, ``pro-login``)."""

    def __init__(self, signer: TokenSigner, settings: Settings) -> None:
        self.signer = signer
        self.issuer = settings.issuer_url

    def _audience(self, purpose: str) -> str:
        return f"{self.issuer}/ticket/{purpose}"

    def issue(
        self, purpose: str, binding: str, claims: dict[str, Any], seconds: int = TICKET_SECONDS
    ) -> str:
        """A ticket for ``purpose`` holding ``claims``, valid only with the same ``binding``."""
        issued = int(time.time())
        body = {
            **claims,
            "iss": self.issuer,
            "aud": self._audience(purpose),
            "iat": issued,
            "exp": issued + seconds,
            "bnd": binding,
        }
        return self.signer.sign(body)

    def check(self, purpose: str, binding: str, ticket: str) -> dict[str, Any]:
        """The claims of a valid ticket for ``purpose`` and ``binding``; TokenError otherwise."""
        claims = self.signer.verify(ticket, audience=self._audience(purpose), issuer=self.issuer)
        bound = claims.get("bnd")
        if not isinstance(bound, str) or not hmac.compare_digest(bound, binding):
            raise TokenError("ticket rejected: not for this session")
        return claims
