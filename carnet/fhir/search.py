"""Search requests: parse FHIR search parameters into resolved terms (chains and _has included),
result parameters (_count, _sort, _include, _summary, _elements, _total) and what was ignored.

carnet.fhir.query turns a request into SQL; carnet.fhir.repository runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carnet.fhir.definitions import Definitions, SearchParam
from carnet.fhir.errors import FhirError, bad_request
from carnet.fhir.search_values import split_escaped

RESULT_PARAMS = frozenset({"_format", "_pretty"})
SORTABLE_TYPES = frozenset({"date", "number", "quantity", "token", "reference", "uri"})
SUMMARY_MODES = frozenset({"true", "false", "text", "data", "count"})
MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"exact", "contains", "missing"}),
    "token": frozenset({"not", "text", "missing"}),
    "reference": frozenset({"identifier", "missing"}),  # plus the target types
    "uri": frozenset({"above", "below", "missing"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "composite": frozenset(),
}


class UnknownParameter(Exception):  # noqa: N818 - a control-flow signal, not an error to report
    """The key names no parameter of this type (ignored in lenient mode, 400 in strict)."""


@dataclass(frozen=True)
class Term:
    """One search key resolved against the definitions.

    ``code`` is a parameter code, ``_id``, ``_lastUpdated`` or ``_has``. A chained key
    (``subject:Patient.name``) carries the terms of each possible target type in ``chain``; a
    ``_has:Observation:patient:code`` key carries its source type, reference and inner term.
    """

    res_type: str
    code: str
    modifier: str = ""
    param: SearchParam | None = None
    chain: tuple[tuple[str, Term], ...] = ()
    has_type: str = ""
    has_reference: str = ""
    has_inner: Term | None = None


@dataclass(frozen=True)
class Include:
    reverse: bool  # _revinclude
    source_type: str
    codes: tuple[str, ...]  # reference parameters followed
    target_type: str | None
    iterate: bool


@dataclass
class SearchRequest:
    """A parsed search: criteria (AND of ORs), paging, sorting, includes, shaping, what was ignored."""

    res_type: str
    criteria: list[tuple[Term, list[str]]] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (code, descending)
    summary: str = "false"
    elements: tuple[str, ...] = ()
    total: str = "accurate"
    includes: list[Include] = field(default_factory=list)
    compartment: str | None = None  # a patient id: search inside Patient/<id>/<type>
    snapshot: str | None = None  # paging through a stored result (see FhirService._search)
    ignored: list[str] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)
    attachment_data: bool = True  # False: the matches' attachments without their data (a list)

    @property
    def summary_count(self) -> bool:
        return self.summary == "count"


def resolve(definitions: Definitions, res_type: str, key: str) -> Term:
    """Resolve a key such as ``name:exact``, ``subject:Patient.identifier`` or ``_has:...``."""
    if key.startswith("_has:"):
        parts = key.split(":", 3)
        if len(parts) < 4:
            raise bad_request(f"'{key}' must read _has:Type:reference:parameter", key)
        source, reference, rest = parts[1], parts[2], parts[3]
        if source not in definitions.resource_types:
            raise UnknownParameter(key)
        ref = definitions.params_for(source).get(reference)
        if ref is None or ref.type != "reference" or (ref.targets and res_type not in ref.targets):
            raise UnknownParameter(key)
        inner = resolve(definitions, source, rest)
        return Term(res_type, "_has", has_type=source, has_reference=reference, has_inner=inner)
    head, dot, tail = key.partition(".")
    code, _, modifier = head.partition(":")
    if code in ("_id", "_lastUpdated"):
        if dot or modifier:
            raise bad_request(f"'{key}' takes no modifier or chain", key)
        return Term(res_type, code)
    param = definitions.params_for(res_type).get(code)
    if param is None:
        raise UnknownParameter(key)
    if dot:
        if param.type != "reference":
            raise bad_request(f"'{code}' is not a reference and cannot be chained", key)
        if modifier and modifier not in param.targets:
            raise bad_request(f"'{modifier}' is not a target type of '{code}'", key)
        chain: list[tuple[str, Term]] = []
        for target in [modifier] if modifier else list(param.targets):
            try:
                chain.append((target, resolve(definitions, target, tail)))
            except UnknownParameter:
                continue
        if not chain:
            raise UnknownParameter(key)
        return Term(res_type, code, param=param, chain=tuple(chain))
    allowed = MODIFIERS.get(param.type, frozenset())
    if param.type == "reference":
        allowed = allowed | set(param.targets)
    if modifier and modifier not in allowed:
        raise bad_request(f"modifier ':{modifier}' is not supported on '{code}'", key)
    return Term(res_type, code, modifier, param)


def _includes(
    definitions: Definitions, res_type: str, key: str, value: str, reverse: bool
) -> Include:
    iterate = key.endswith(":iterate") or key.endswith(":recurse")
    parts = value.split(":")
    if value == "*":
        return Include(reverse, res_type, ("*",), None, iterate)
    if len(parts) < 2 or parts[0] not in definitions.resource_types:
        raise bad_request(f"{key}={value} must read Type:parameter[:targetType]", key)
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) > 2 else None
    if code == "*":
        codes = tuple(c for c, p in definitions.params_for(source).items() if p.type == "reference")
    else:
        param = definitions.params_for(source).get(code)
        if param is None or param.type != "reference":
            raise bad_request(f"'{code}' is not a reference parameter of {source}", key)
        codes = (code,)
    if target is not None and target not in definitions.resource_types:
        raise bad_request(f"'{target}' is not a resource type", key)
    if not reverse and not iterate and source != res_type:
        raise bad_request(f"_include must start with the searched type {res_type}", key)
    return Include(reverse, source, codes, target, iterate)


def _int(key: str, value: str) -> int:
    try:
        return clamp_int(int(value))
    except ValueError:
        raise bad_request(f"{key} must be an integer, got '{value[:20]}'", key) from None


PAGE_LIMIT = 2**62
"""Beyond any count or offset a page can mean; SQLite's INTEGER (and PostgreSQL's bigint) stop at
2**63 - 1, so a larger _offset overflowed in the driver (a 500)."""


def clamp_int(number: int) -> int:
    return max(-PAGE_LIMIT, min(number, PAGE_LIMIT))


DEFAULT_MAX_TERMS = 100


def term_cost(key: str, value: str) -> int:
    """What one search parameter weighs against the cap: its values (comma = OR) times the
    links of its key (each chain step and ``_has`` joins one more query). Counted before the
    key is resolved, whose recursion follows the chain."""
    links = 1 + key.count(".") + key.count("_has:")
    return max(1, len(split_escaped(value, ","))) * links


def parse(
    res_type: str,
    params: list[tuple[str, str]],
    definitions: Definitions,
    *,
    default_count: int,
    max_count: int,
    strict: bool,
    max_terms: int = DEFAULT_MAX_TERMS,
) -> SearchRequest:
    """Parse query pairs; unknown parameters are an error in strict mode and ignored otherwise.
    More than ``max_terms`` search terms is a 400 (see ``term_cost``)."""
    req = SearchRequest(res_type=res_type, count=default_count)
    known = definitions.params_for(res_type)
    terms = 0
    for key, value in params:
        name = key.split(":", 1)[0]
        if name == "_count":  # paging links add _count and _offset themselves
            req.count = max(0, min(_int(key, value), max_count))
            continue
        if name == "_offset":
            req.offset = max(0, _int(key, value))
            continue
        if name == "_snapshot":  # paging links add it back
            req.snapshot = value
            continue
        if name == "_sort":
            for item in value.split(","):
                desc = item.startswith("-")
                code = item.lstrip("-")
                if code not in ("_id", "_lastUpdated") and (
                    code not in known or known[code].type not in SORTABLE_TYPES
                ):
                    raise bad_request(f"cannot sort {res_type} by '{code}'", "_sort")
                req.sort.append((code, desc))
        elif name == "_summary":
            if value not in SUMMARY_MODES:
                raise bad_request(
                    f"_summary={value[:20]} is not one of {sorted(SUMMARY_MODES)}", key
                )
            req.summary = value
        elif name == "_elements":
            req.elements = tuple(e.strip() for e in value.split(",") if e.strip())
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise bad_request(f"_total={value[:20]} is not none, estimate or accurate", key)
            req.total = value
        elif name in ("_include", "_revinclude"):
            req.includes.append(_includes(definitions, res_type, key, value, name == "_revinclude"))
        elif name in RESULT_PARAMS:
            continue
        else:
            terms += term_cost(key, value)
            if terms > max_terms:
                raise FhirError.of(
                    400,
                    "too-costly",
                    f"a search may hold at most {max_terms} terms (each value, chain link "
                    "and _has counts one)",
                )
            try:
                term = resolve(definitions, res_type, key)
            except UnknownParameter:
                if strict:
                    raise bad_request(
                        f"unknown search parameter '{key}' for {res_type}", key
                    ) from None
                req.ignored.append(key)
                continue
            if value == "":
                continue  # an empty value is ignored, as the specification allows
            req.criteria.append((term, split_escaped(value, ",")))
        req.used.append((key, value))
    return req
