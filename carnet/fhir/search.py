"""Search: parse FHIR search parameters and compile them into SQL over the index tables.

The compiler only builds statements; carnet.fhir.repository runs them. Every condition is a
``res_id IN (subquery on one index table)``, so parameters AND together and comma-separated values
OR together inside one subquery, as the specification says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select

from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.dates import HIGHEST, LOWEST, date_range
from carnet.fhir.definitions import Definitions, SearchParam
from carnet.fhir.errors import bad_request
from carnet.fhir.indexer import parse_reference
from carnet.fhir.models import INDEX_TABLES, resource

PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap")
RESULT_PARAMS = frozenset(
    {"_count", "_offset", "_sort", "_summary", "_total", "_format", "_pretty"}
)
SORTABLE_TYPES = frozenset({"date", "number", "quantity", "token", "reference", "uri"})


@dataclass
class SearchRequest:
    """A parsed search: criteria (AND of ORs), paging, sorting, and what was ignored."""

    res_type: str
    criteria: list[tuple[str, str, list[str]]] = field(
        default_factory=list
    )  # (code, modifier, values)
    count: int = 20
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (code, descending)
    summary_count: bool = False
    ignored: list[str] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)


def parse(
    res_type: str,
    params: list[tuple[str, str]],
    definitions: Definitions,
    *,
    default_count: int,
    max_count: int,
    strict: bool,
) -> SearchRequest:
    """Parse query pairs; unknown parameters are an error in strict mode and ignored otherwise."""
    req = SearchRequest(res_type=res_type, count=default_count)
    known = definitions.params_for(res_type)
    for key, value in params:
        name, _, modifier = key.partition(":")
        if name == "_count":  # paging links add _count and _offset themselves
            req.count = max(0, min(_int(key, value), max_count))
            continue
        if name == "_offset":
            req.offset = max(0, _int(key, value))
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
            if value == "count":
                req.summary_count = True
            elif value != "false":
                if strict or value not in ("true", "text", "data"):
                    raise bad_request(f"_summary={value} is not supported", "_summary")
                req.ignored.append(f"_summary={value}")  # served in full, and said so
                continue
        elif name in RESULT_PARAMS:
            continue
        elif name in ("_id", "_lastUpdated") or name in known:
            if not value:
                continue  # an empty value is ignored, as the specification allows
            if modifier and modifier not in _modifiers(name, known):
                raise bad_request(f"modifier ':{modifier}' is not supported on '{name}'", key)
            req.criteria.append((name, modifier, split_escaped(value, ",")))
            req.used.append((key, value))
            continue
        elif strict:
            raise bad_request(f"unknown search parameter '{name}' for {res_type}", key)
        else:
            req.ignored.append(key)
            continue
        req.used.append((key, value))
    return req


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` unless escaped with a backslash (FHIR search escaping of , | $ and \\)."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            current.append(ch + next(chars, ""))
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    return re.sub(r"\\([,|$\\])", r"\1", text)


def _modifiers(name: str, known: dict[str, SearchParam]) -> set[str]:
    if name in ("_id", "_lastUpdated"):
        return set()
    kind = known[name].type
    if kind == "string":
        return {"exact"}
    if kind == "token":
        return {"not"}
    if kind == "reference":
        return set(known[name].targets)
    return set()


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{key} must be an integer, got '{value[:20]}'", key) from None


class Compiler:
    """Builds the SELECT of matching (type, id) pairs and its COUNT."""

    SUPPORTED_PARAM_TYPES = tuple(INDEX_TABLES)

    def __init__(self, definitions: Definitions, blind: BlindIndexer) -> None:
        self.definitions = definitions
        self.blind = blind

    def compile(self, req: SearchRequest) -> tuple[Select[Any], Select[Any]]:
        known = self.definitions.params_for(req.res_type)
        conds: list[ColumnElement[bool]] = [
            resource.c.res_type == req.res_type,
            resource.c.current,
            resource.c.deleted.is_(False),
        ]
        for code, modifier, values in req.criteria:
            if code == "_id":
                conds.append(resource.c.res_id.in_(values))
            elif code == "_lastUpdated":
                conds.append(or_(*(self._last_updated(v) for v in values)))
            else:
                conds.append(self._param(req.res_type, known[code], modifier, values))
        where = and_(*conds)
        ids = select(resource.c.res_type, resource.c.res_id).where(where)
        for code, desc in req.sort or [("_lastUpdated", False)]:
            key = self._sort_key(req.res_type, known, code, desc)
            ids = ids.order_by(key.desc() if desc else key.asc())
        ids = ids.order_by(resource.c.res_id).offset(req.offset).limit(req.count)
        total = select(func.count()).select_from(resource).where(where)
        return ids, total

    def _sort_key(self, res_type: str, known: dict[str, SearchParam], code: str, desc: bool) -> Any:
        if code == "_id":
            return resource.c.res_id
        if code == "_lastUpdated":
            return resource.c.last_updated
        param = known[code]
        table = INDEX_TABLES[param.type]
        column = {
            "date": table.c.get("high" if desc else "low"),
            "token": table.c.get("code"),
            "reference": table.c.get("target_id"),
        }.get(param.type, table.c.get("value"))
        assert column is not None
        agg = func.max(column) if desc else func.min(column)
        return (
            select(agg)
            .where(
                table.c.res_type == res_type,
                table.c.res_id == resource.c.res_id,
                table.c.param == code,
            )
            .scalar_subquery()
        )

    def _last_updated(self, value: str) -> ColumnElement[bool]:
        prefix, raw = _split_prefix(value)
        rng = date_range(raw)
        if rng is None:
            raise bad_request(f"'{raw}' is not a valid date", "_lastUpdated")
        col = resource.c.last_updated
        return _range_condition(prefix, col, col, rng)

    def _param(
        self, res_type: str, param: SearchParam, modifier: str, values: list[str]
    ) -> ColumnElement[bool]:
        table = INDEX_TABLES[param.type]
        negate = modifier == "not"
        ors = [self._value_condition(table, param, modifier, v) for v in values]
        sub = select(table.c.res_id).where(
            table.c.res_type == res_type, table.c.param == param.code, or_(*ors)
        )
        return not_(resource.c.res_id.in_(sub)) if negate else resource.c.res_id.in_(sub)

    def _value_condition(
        self, table: Any, param: SearchParam, modifier: str, value: str
    ) -> ColumnElement[bool]:
        kind = param.type
        c = table.c
        if kind == "string":
            text = unescape(value)
            digest = (
                self.blind.exact_hash(text)
                if modifier == "exact"
                else self.blind.prefix_query(text)
            )
            return c.value == digest  # type: ignore[no-any-return]
        if kind == "token":
            pieces = split_escaped(value, "|")
            sep = "|" if len(pieces) > 1 else ""
            system = unescape(pieces[0]) if sep else ""
            code = unescape("|".join(pieces[1:]) if sep else pieces[0])
            if param.blind and code:
                code = self.blind.token_hash(code)
            if sep and not code:
                return c.system == system  # type: ignore[no-any-return]
            if sep and not system:
                return and_(c.system.is_(None), c.code == code)
            if sep:
                return and_(c.system == system, c.code == code)
            return c.code == code  # type: ignore[no-any-return]
        if kind == "reference":
            target_type = modifier or None
            parsed = parse_reference(value)
            if parsed and parsed[0]:
                target_type, target_id = parsed
            else:
                target_id = value
            cond = c.target_id == target_id
            return and_(cond, c.target_type == target_type) if target_type else cond
        if kind == "date":
            prefix, raw = _split_prefix(value)
            rng = date_range(raw)
            if rng is None:
                raise bad_request(f"'{raw}' is not a valid date", param.code)
            return _range_condition(prefix, c.low, c.high, rng)
        if kind in ("quantity", "number"):
            prefix, raw = _split_prefix(value)
            number, _, unit = raw.partition("|")
            cond = _number_condition(prefix, c.value, number, param.code)
            if kind == "quantity" and unit:
                system, sep, code = unit.partition("|")
                if not sep:
                    return and_(cond, c.code == system)
                parts = [cond, c.code == code]
                if system:
                    parts.append(c.system == system)
                return and_(*parts)
            return cond
        if kind == "uri":
            return c.value == unescape(value)  # type: ignore[no-any-return]
        return false()


def _split_prefix(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in PREFIXES and (value[2].isdigit() or value[2] == "-"):
        return value[:2], value[2:]
    return "eq", value


def _range_condition(prefix: str, low: Any, high: Any, rng: tuple[str, str]) -> ColumnElement[bool]:
    qlow, qhigh = rng
    if prefix == "eq":
        return and_(low >= qlow, high <= qhigh)
    if prefix == "ne":
        return or_(low < qlow, high > qhigh)
    if prefix == "lt":
        return low < qlow  # type: ignore[no-any-return]
    if prefix == "le":
        return low <= qhigh  # type: ignore[no-any-return]
    if prefix == "gt":
        return high > qhigh  # type: ignore[no-any-return]
    if prefix == "ge":
        return high >= qlow  # type: ignore[no-any-return]
    if prefix == "sa":
        return low > qhigh  # type: ignore[no-any-return]
    if prefix == "eb":
        return high < qlow  # type: ignore[no-any-return]
    # ap: overlapping the given range
    return and_(low <= qhigh, high >= qlow)


def _number_condition(prefix: str, col: Any, text: str, code: str) -> ColumnElement[bool]:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise bad_request(f"'{text[:30]}' is not a number", code) from None
    exponent = number.as_tuple().exponent
    # Precision rule: 100 means [99.5, 100.5); 100.00 means [99.995, 100.005).
    half = Decimal(5) * Decimal(10) ** (Decimal(exponent if isinstance(exponent, int) else 0) - 1)
    low, high, value = float(number - half), float(number + half), float(number)
    if prefix == "eq":
        return and_(col >= low, col < high)
    if prefix == "ne":
        return or_(col < low, col >= high)
    if prefix in ("lt", "eb"):
        return col < value  # type: ignore[no-any-return]
    if prefix == "le":
        return col <= value  # type: ignore[no-any-return]
    if prefix in ("gt", "sa"):
        return col > value  # type: ignore[no-any-return]
    if prefix == "ge":
        return col >= value  # type: ignore[no-any-return]
    return and_(col >= value * 0.9, col <= value * 1.1)  # ap: within 10 %


__all__ = ["HIGHEST", "LOWEST", "Compiler", "SearchRequest", "parse"]
