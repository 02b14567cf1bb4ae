"""SMART on FHIR v2 scopes: parsing and the "is this covered by that" rule.

A resource scope is ``<context>/<type>.<permissions>[?query]``: context ``patient`` (the launch or
the person's own record), ``user`` (whatever the user may see), ``system`` (backend services);
type a FHIR resource type or ``*``; permissions a subsequence of ``cruds``. SMART v1 suffixes
``read`` and ``write`` are read as ``rs`` and ``cud``; ``*`` as ``cruds``. Other scopes
(``openid``, ``fhirUser``, ``launch/patient``, ``offline_access``, ``online_access``) are compared
as plain strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

CONTEXTS = ("patient", "user", "system")
PERMISSIONS = "cruds"
IDENTITY_SCOPES = frozenset({"openid", "fhirUser", "profile"})
LAUNCH_SCOPES = frozenset({"launch/patient", "launch"})
OFFLINE_SCOPES = frozenset({"offline_access", "online_access"})
OTHER_SCOPES = IDENTITY_SCOPES | LAUNCH_SCOPES | OFFLINE_SCOPES

_RESOURCE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(\?[^\s]+)?$")
_V1 = {"read": "rs", "write": "cud", "*": PERMISSIONS}


class ScopeError(ValueError):
    """A scope string that is neither a SMART resource scope nor one of the known others."""


@dataclass(frozen=True)
class ResourceScope:
    """One parsed resource scope."""

    context: str
    res_type: str  # a FHIR type or "*"
    permissions: str  # a subsequence of "cruds"
    query: str | None = None

    def covers(self, other: ResourceScope) -> bool:
        """True if everything ``other`` permits is permitted by this scope."""
        if self.context != other.context:
            return False
        if self.res_type not in ("*", other.res_type):
            return False
        if not set(other.permissions) <= set(self.permissions):
            return False
        return self.query is None or self.query == other.query


def parse_resource_scope(scope: str) -> ResourceScope | None:
    """The resource scope ``scope`` names, None for a non-resource scope; ScopeError if malformed."""
    if scope in OTHER_SCOPES:
        return None
    m = _RESOURCE.match(scope)
    if not m:
        raise ScopeError("unknown scope")
    context, res_type, perms, query = m.groups()
    perms = _V1.get(perms, perms)
    if not perms or any(p not in PERMISSIONS for p in perms):
        raise ScopeError("unknown permissions in scope")
    ordered = "".join(p for p in PERMISSIONS if p in perms)
    if ordered != perms:
        raise ScopeError("SMART v2 permissions come in the order c, r, u, d, s")
    return ResourceScope(context, res_type, perms, query)


def split_scopes(value: str | None) -> list[str]:
    """The distinct scopes of a space-separated scope parameter, in order."""
    seen: dict[str, None] = {}
    for part in (value or "").split():
        seen.setdefault(part, None)
    return list(seen)


def covered(allowed: Iterable[str], requested: str) -> bool:
    """True if ``requested`` is one of ``allowed`` or a resource scope narrower than one of them."""
    allowed = list(allowed)
    if requested in allowed:
        return True
    try:
        wanted = parse_resource_scope(requested)
    except ScopeError:
        return False
    if wanted is None:
        return False
    for candidate in allowed:
        try:
            parsed = parse_resource_scope(candidate)
        except ScopeError:
            continue
        if parsed is not None and parsed.covers(wanted):
            return True
    return False


def validate(scopes: Iterable[str]) -> list[str]:
    """The scopes, each checked; ScopeError names none of them (they are client input)."""
    out = []
    for scope in scopes:
        parse_resource_scope(scope)
        out.append(scope)
    return out


def context_of(scope: str) -> str | None:
    """``patient``, ``user`` or ``system`` for a resource scope, None for the others."""
    try:
        parsed = parse_resource_scope(scope)
    except ScopeError:
        return None
    return parsed.context if parsed else None
