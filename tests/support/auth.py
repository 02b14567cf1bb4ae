"""Credentials for tests: real access tokens signed by the services' own key."""

from __future__ import annotations

from carnet.app import Services
from carnet.authn.tokens import issue_access_token
from carnet.caller import Kind, Principal

TEST_OPERATOR = Principal(Kind.OPERATOR, "operator:test", scopes=frozenset({"system/*.*"}))


def bearer(services: Services, principal: Principal = TEST_OPERATOR) -> dict[str, str]:
    """An Authorization header carrying a fresh access token for ``principal``."""
    token, _ = issue_access_token(services.crypto.token_signer(), services.settings, principal)
    return {"Authorization": f"Bearer {token}"}
