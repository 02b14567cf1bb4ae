"""How one search value matches index rows: prefixes, precision, escaping, modifiers.

Pure functions building SQL conditions on one index table; carnet.fhir.query combines them.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, and_, false, literal, or_

from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.dates import date_range
from carnet.fhir.definitions import SearchParam
from carnet.fhir.errors import bad_request
from carnet.fhir.indexer import parse_reference

PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap")


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` unless escaped with a backslash (FHIR search escaping of , | $ and \\\\)."""
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


def split_prefix(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in PREFIXES and (value[2].isdigit() or value[2] == "-"):
        return value[:2], value[2:]
    return "eq", value


def range_condition(prefix: str, low: Any, high: Any, rng: tuple[str, str]) -> ColumnElement[bool]:
    """A stored [low, high] interval against a searched one, per the FHIR date prefixes."""
    qlow, qhigh = rng
    conditions: dict[str, Any] = {
        "eq": lambda: and_(low >= qlow, high <= qhigh),
        "ne": lambda: or_(low < qlow, high > qhigh),
        "lt": lambda: low < qlow,
        "le": lambda: low <= qhigh,
        "gt": lambda: high > qhigh,
        "ge": lambda: high >= qlow,
        "sa": lambda: low > qhigh,
        "eb": lambda: high < qlow,
        "ap": lambda: and_(low <= qhigh, high >= qlow),  # overlapping
    }
    result: ColumnElement[bool] = conditions[prefix]()
    return result


def number_condition(prefix: str, col: Any, text: str, code: str) -> ColumnElement[bool]:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise bad_request(f"'{text[:30]}' is not a number", code) from None
    exponent = number.as_tuple().exponent
    # Precision rule: 100 means [99.5, 100.5); 100.00 means [99.995, 100.005).
    half = Decimal(5) * Decimal(10) ** (Decimal(exponent if isinstance(exponent, int) else 0) - 1)
    low, high, value = float(number - half), float(number + half), float(number)
    conditions: dict[str, Any] = {
        "eq": lambda: and_(col >= low, col < high),
        "ne": lambda: or_(col < low, col >= high),
        "lt": lambda: col < value,
        "eb": lambda: col < value,
        "le": lambda: col <= value,
        "gt": lambda: col > value,
        "sa": lambda: col > value,
        "ge": lambda: col >= value,
        "ap": lambda: and_(col >= value * 0.9, col <= value * 1.1),  # within 10 %
    }
    result: ColumnElement[bool] = conditions[prefix]()
    return result


def token_parts(value: str) -> tuple[bool, str, str]:
    """(has a '|', system, code) of a token value, escapes resolved."""
    pieces = split_escaped(value, "|")
    if len(pieces) == 1:
        return False, "", unescape(pieces[0])
    return True, unescape(pieces[0]), unescape("|".join(pieces[1:]))


def token_condition(c: Any, value: str, blind: BlindIndexer | None) -> ColumnElement[bool]:
    has_bar, system, code = token_parts(value)
    if blind is not None and code:
        code = blind.token_hash(code)
    if has_bar and not code:
        result: ColumnElement[bool] = c.system == system
    elif has_bar and not system:
        result = and_(c.system.is_(None), c.code == code)
    elif has_bar:
        result = and_(c.system == system, c.code == code)
    else:
        result = c.code == code
    return result


def value_condition(
    table: Any, param: SearchParam, modifier: str, value: str, blind: BlindIndexer
) -> ColumnElement[bool]:
    """The condition one value puts on rows of ``param``'s index table."""
    kind = param.type
    c = table.c
    result: ColumnElement[bool]
    if kind == "string":
        text = unescape(value)
        digest = blind.exact_hash(text) if modifier == "exact" else blind.prefix_query(text)
        result = c.value == digest
    elif kind == "token":
        result = token_condition(c, value, blind if param.blind else None)
    elif kind == "reference":
        target_type = modifier or None
        parsed = parse_reference(value)
        if parsed and parsed[0]:
            target_type, target_id = parsed
        else:
            target_id = value
        cond = c.target_id == target_id
        result = and_(cond, c.target_type == target_type) if target_type else cond
    elif kind == "date":
        prefix, raw = split_prefix(value)
        rng = date_range(raw)
        if rng is None:
            raise bad_request(f"'{raw}' is not a valid date", param.code)
        result = range_condition(prefix, c.low, c.high, rng)
    elif kind in ("quantity", "number"):
        prefix, raw = split_prefix(value)
        pieces = split_escaped(raw, "|")
        result = number_condition(prefix, c.value, unescape(pieces[0]), param.code)
        if kind == "quantity" and len(pieces) == 2:  # number|unit-code
            result = and_(result, c.code == unescape(pieces[1]))
        elif kind == "quantity" and len(pieces) >= 3:
            system, code = unescape(pieces[1]), unescape(pieces[2])
            result = and_(result, c.code == code, *([c.system == system] if system else []))
    elif kind == "uri":
        text = unescape(value)
        if modifier == "below":  # the stored URI starts with the given one
            result = c.value.startswith(text, autoescape=True)
        elif modifier == "above":  # the given URI starts with the stored one
            result = literal(text).startswith(c.value)
        else:
            result = c.value == text
    else:
        result = false()
    return result
