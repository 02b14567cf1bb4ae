"""Operator tokens: a short-lived access token for a named operator's scripts (imports, exports,
checks against a live server), printed by ``carnet token issue`` and audited as ``token-issue``."""

from __future__ import annotations

import re
from typing import Any

from carnet.audit.events import Actor, build_event
from carnet.audit.service import AuditService
from carnet.authn import smart_scopes
from carnet.authn.tokens import issue_access_token
from carnet.caller import Kind, Principal
from carnet.crypto.tokens import TokenSigner
from carnet.settings import Settings

MAX_MINUTES = 60.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class OperatorTokenError(ValueError):
    """A request for an operator token that cannot be granted; names the rule, not the input."""


def issue_operator_token(
    signer: TokenSigner,
    settings: Settings,
    audit: AuditService,
    name: str,
    scopes: list[str],
    *,
    minutes: float | None = None,
    source: str = "cli",
) -> tuple[str, dict[str, Any]]:
    """A signed token for ``operator:<name>`` with ``system/`` scopes, living ``minutes`` (default
    the access-token setting, at most an hour), and its claims. The issue is audited."""
    if not _NAME.match(name):
        raise OperatorTokenError("an operator name is 1-63 lower-case letters, digits, . _ -")
    wanted = smart_scopes.split_scopes(" ".join(scopes))
    if not wanted:
        raise OperatorTokenError("at least one scope, e.g. 'system/*.rs'")
    for scope in wanted:
        if smart_scopes.context_of(scope) != "system":
            raise OperatorTokenError("operator tokens carry system/ resource scopes only")
    lifetime = settings.access_token_minutes if minutes is None else minutes
    if not 0 < lifetime <= MAX_MINUTES:
        raise OperatorTokenError(f"an operator token lives at most {MAX_MINUTES:.0f} minutes")
    principal = Principal(Kind.OPERATOR, f"operator:{name}", scopes=frozenset(wanted))
    token, claims = issue_access_token(signer, settings, principal, minutes=lifetime)
    actor = Actor(actor=principal.subject, source=source, purpose="operations", role="operator")
    audit.append([build_event(actor, "token-issue", None, 200, [])])
    return token, claims
