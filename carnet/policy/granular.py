"""Granular SMART scopes in the query: ``patient/Observation.rs?category=laboratory`` covers the
Observations whose search index matches ``category=laboratory``, and no others.

The policy decision point stays free of FHIR search parameters: the application gives it
``granular_ids_for(compiler, definitions)``, which turns a scope's query into the SQL of the ids
it covers with the search compiler itself, so a granular scope means exactly what the same search
would return. A query Carnet cannot evaluate (an unknown parameter, paging or includes) covers
nothing: a scope fails closed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Select, false, literal, select

from carnet.fhir.definitions import Definitions
from carnet.fhir.errors import FhirError
from carnet.fhir.query import Compiler
from carnet.fhir.search import parse
from carnet.policy.scopes import GranularIds


def _nothing() -> Select[Any]:
    return select(literal("")).where(false())


def granular_ids_for(compiler: Compiler, definitions: Definitions) -> GranularIds:
    """The function that builds the ids a type's granular queries cover (any of them)."""

    def query_ids(res_type: str, query: str) -> Select[Any] | None:
        pairs = parse_qsl(query, keep_blank_values=True)
        if not pairs or any(key.startswith("_") for key, _ in pairs):
            return None  # paging, sorting, includes or _has restrict no item by themselves
        try:
            req = parse(res_type, pairs, definitions, default_count=1, max_count=1, strict=True)
            terms = [compiler.ids(term, values) for term, values in req.criteria]
        except FhirError:
            return None
        if not terms:
            return None
        if len(terms) == 1:
            return terms[0]
        first = terms[0].subquery()
        column = first.c[0]
        return select(column).where(*(column.in_(other) for other in terms[1:]))

    def ids(res_type: str, queries: tuple[str, ...]) -> Select[Any]:
        branches = [q for q in (query_ids(res_type, query) for query in queries) if q is not None]
        if not branches:
            return _nothing()
        if len(branches) == 1:
            return branches[0]
        union = branches[0].union(*branches[1:]).subquery()
        return select(union.c[0])

    return ids
