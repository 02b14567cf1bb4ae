"""SMART v2 resource scopes as the policy reads them: which permission an interaction needs,
which types a caller's scopes allow, and which types they grant only through a query (granular
scopes such as ``patient/Observation.rs?category=laboratory``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, false, literal, select

from carnet.authn.smart_scopes import ResourceScope, ScopeError, parse_resource_scope

PERMISSION_OF_ACTION = {"create": "c", "update": "u", "delete": "d", "search": "s"}


def permission_for(action: str) -> str:
    """The SMART v2 permission an interaction needs (``r`` for read, vread and history)."""
    return PERMISSION_OF_ACTION.get(action, "r")


def parse_scopes(texts: frozenset[str]) -> list[ResourceScope]:
    """The caller's resource scopes; malformed ones, and a wildcard type restricted by a query
    (``patient/*.rs?category=...``: a search parameter belongs to one type), grant nothing."""
    return list(_parsed_scopes(texts))


@lru_cache(maxsize=1024)  # asked for every item a session touches; a caller's scopes are few
def _parsed_scopes(texts: frozenset[str]) -> tuple[ResourceScope, ...]:
    out: list[ResourceScope] = []
    for text in texts:
        try:
            scope = parse_resource_scope(text)
        except ScopeError:
            continue
        if scope is not None and not (scope.query is not None and scope.res_type == "*"):
            out.append(scope)
    return tuple(out)


def allowed_types(
    scopes: list[ResourceScope], context: str, permission: str
) -> frozenset[str] | None:
    """Types the scopes allow for ``permission`` in ``context``, some perhaps only in part (see
    ``granular_queries``); None means every type."""
    types: set[str] = set()
    for scope in scopes:
        if scope.context == context and permission in scope.permissions:
            if scope.res_type == "*":
                return None
            types.add(scope.res_type)
    return frozenset(types)


def granular_queries(
    scopes: list[ResourceScope], context: str, permission: str
) -> dict[str, tuple[str, ...]]:
    """Types the scopes grant only through queries (SMART v2 granular scopes such as
    ``patient/Observation.rs?category=laboratory``), with those queries: an item of such a type
    is covered when it matches one of them. A type also granted without a query is not here."""
    whole: set[str] = set()
    queries: dict[str, list[str]] = {}
    for scope in scopes:
        if scope.context != context or permission not in scope.permissions:
            continue
        if scope.query is None:
            whole.add(scope.res_type)
        else:
            queries.setdefault(scope.res_type, []).append(scope.query.lstrip("?"))
    if "*" in whole:
        return {}
    return {t: tuple(sorted(set(qs))) for t, qs in queries.items() if t not in whole}


GranularIds = Callable[[str, tuple[str, ...]], Select[Any]]
"""Builds the ids (first column) of the current resources of a type matching any of the
queries; given by the FHIR engine, which knows the search parameters (``carnet.policy.granular``)."""


def no_granular_ids(res_type: str, queries: tuple[str, ...]) -> Select[Any]:
    # Until the FHIR engine provides the compiler, a granular scope covers nothing (fails closed).
    return select(literal("")).where(false())
