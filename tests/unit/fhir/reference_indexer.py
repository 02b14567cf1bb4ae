"""The straightforward index extraction the compiled one in carnet.fhir.indexer replaced: FHIRPath
interpreted per resource, rows as dicts. Kept as the oracle the compiled plans must match.

An oracle that borrowed the production functions it checks would agree with them whatever they
did: the values a node yields (strings, tokens, references, date ranges, composite keys) are
worked out here again, from the FHIR rules, and the row conventions are spelt out as literals.
Only the keyed hashing (carnet.crypto) and the parsed definitions are shared."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.definitions import Definitions, SearchParam
from tests.unit.fhir.reference_fhirpath import evaluate

MAX_TEXT = 255  # characters kept of a system, code or target id
CONTAINS = ":contains:"  # + value number: the trigram rows of one string value
TEXT = ":text"  # the prefix rows of a token's text
IDENTIFIER = ":identifier"  # the token row of a reference's logical identifier
# The parts of a HumanName and an Address a string search looks in.
NAME_AND_ADDRESS_PARTS = (
    *("family", "given", "prefix", "suffix", "text"),
    *("line", "city", "district", "state", "postalCode", "country"),
)
LOWEST, HIGHEST = "0001-01-01T00:00:00.000000", "9999-12-31T23:59:59.999999"


@dataclass
class ReferenceRows:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    patient_id: str | None = None
    value_count: int = 0
    code_texts: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(kind, []).append(row)


class ReferenceIndexer:
    def __init__(
        self, definitions: Definitions, blind: BlindIndexer, local_base: str | None = None
    ) -> None:
        self.definitions = definitions
        self.blind = blind
        self.local_base = local_base  # this server's FHIR base; other absolute URLs are foreign
        # The parameters of each type, in registry order, looked up once per type (not compiled:
        # their paths are still interpreted per resource).
        self._params: dict[str, list[SearchParam]] = {}

    def index(
        self, resource_type: str, resource_id: str, resource: dict[str, Any]
    ) -> ReferenceRows:
        out = ReferenceRows()
        base = {"res_type": resource_type, "res_id": resource_id}
        references: dict[str, list[str]] = {}
        params = self._params.get(resource_type)
        if params is None:
            params = self._params[resource_type] = [
                param
                for param in self.definitions.params_for(resource_type).values()
                if param.code not in ("_id", "_lastUpdated")
            ]
        for param in params:
            for path in param.paths:
                for node in evaluate(resource, path):
                    self._add(out, base, param, node, references)
        out.patient_id = (
            resource_id
            if resource_type == "Patient"
            else self._compartment(resource_type, references)
        )
        return out

    def _ours(self, ref: str) -> bool:
        """A Patient of this server: a relative reference, or an absolute one under its base (a
        Patient of another server is not ours, whatever its id)."""
        if not urlsplit(ref).scheme:
            return True
        base = (self.local_base or "").rstrip("/")
        return bool(base) and ref.startswith(base + "/")

    def _compartment(self, resource_type: str, references: dict[str, list[str]]) -> str | None:
        for code in self.definitions.compartment.get(resource_type, ()):
            for target in references.get(code, ()):
                return target
        return None

    def _add(
        self,
        out: ReferenceRows,
        base: dict[str, str],
        param: SearchParam,
        node: Any,
        references: dict[str, list[str]],
    ) -> None:
        if param.type == "composite":
            self._add_composite(out, base, param, node, references)
        else:
            self._add_value(out, base, param.code, param.type, param.blind, node, references)

    def _add_value(
        self,
        out: ReferenceRows,
        base: dict[str, str],
        code: str,
        kind: str,
        blind: bool,
        node: Any,
        references: dict[str, list[str]],
    ) -> None:
        """The rows of one node reached by a parameter ``code`` of type ``kind``."""
        row_base = {**base, "param": code}
        if kind == "string":
            hashes: set[str] = set()
            for text in string_values(node):
                hashes |= self.blind.prefix_hashes(text)
                hashes.add(self.blind.exact_hash(text))
                out.value_count += 1
                gram_param = f"{code}{CONTAINS}{out.value_count}"
                for digest in self.blind.gram_hashes(text):
                    out.add("string", {**base, "param": gram_param, "value": digest})
            for digest in hashes:
                out.add("string", {**row_base, "value": digest})
        elif kind == "token":
            for system, value in token_values(node):
                if blind:
                    value = self.blind.token_hash(value)
                out.add("token", {**row_base, "system": _clip(system), "code": _clip(value)})
            self._add_texts(out, base, code, node)
        elif kind == "reference":
            if isinstance(node, dict) and isinstance(node.get("identifier"), dict):
                ident = node["identifier"]
                if isinstance(ident.get("value"), str):
                    out.add(
                        "token",
                        {
                            **base,
                            "param": f"{code}{IDENTIFIER}",
                            "system": _clip(ident.get("system")),
                            "code": self.blind.token_hash(ident["value"]),
                        },
                    )
            ref = node.get("reference") if isinstance(node, dict) else node
            parsed = parse_reference(ref) if isinstance(ref, str) else None
            if parsed is not None:
                target_type, target_id = parsed
                out.add(
                    "reference",
                    {**row_base, "target_type": target_type, "target_id": _clip(target_id)},
                )
                if target_type == "Patient" and len(target_id) <= 64 and self._ours(ref):
                    references.setdefault(code, []).append(target_id)
        elif kind == "date":
            for low, high in _date_ranges(node):
                out.add("date", {**row_base, "low": low, "high": high})
        elif kind == "quantity":
            if isinstance(node, dict) and isinstance(node.get("value"), int | float):
                out.add(
                    "quantity",
                    {
                        **row_base,
                        "value": float(node["value"]),
                        "system": _clip(node.get("system")),
                        "code": _clip(node.get("code") or node.get("unit")),
                    },
                )
        elif kind == "number":
            if isinstance(node, int | float) and not isinstance(node, bool):
                out.add("number", {**row_base, "value": float(node)})
        elif kind == "uri" and isinstance(node, str):
            out.add("uri", {**row_base, "value": node[:512]})

    def _add_texts(self, out: ReferenceRows, base: dict[str, str], code: str, node: Any) -> None:
        if not isinstance(node, dict):
            return
        found = node.get("coding")
        codings: list[Any] = found if isinstance(found, list) else [node]
        keyed = [
            (str(c.get("system") or "")[:MAX_TEXT], c["code"][:MAX_TEXT], c.get("display"))
            for c in codings
            if isinstance(c, dict) and isinstance(c.get("code"), str)
        ]
        text = node.get("text") if isinstance(node.get("text"), str) else None
        for system, value, display in keyed:
            for shown in (display, text):
                if isinstance(shown, str):
                    out.code_texts.add((system, value, shown))
        if text is not None and not keyed:
            for digest in self.blind.prefix_hashes(text):
                out.add("string", {**base, "param": f"{code}{TEXT}", "value": digest})

    def _add_composite(
        self,
        out: ReferenceRows,
        base: dict[str, str],
        param: SearchParam,
        node: Any,
        references: dict[str, list[str]],
    ) -> None:
        (_, first_paths), (second_type, second_paths) = param.components
        keys = {
            key
            for path in first_paths
            for found in evaluate(node, path)
            for system, code in token_values(found)
            for key in composite_keys(system, code)
        }
        if not keys:
            return
        # The second component's rows, under code$key; such a code is never a blind token code.
        codes = [f"{param.code}${key}" for key in keys]
        for path in second_paths:
            for value in evaluate(node, path):
                for keyed in codes:
                    self._add_value(out, base, keyed, second_type, False, value, references)


def string_values(node: Any) -> Iterator[str]:
    """The texts a string parameter matches in a node: a string, or the parts of a name or
    address (each item of the repeating ones)."""
    if isinstance(node, str):
        yield node
        return
    if not isinstance(node, dict):
        return
    for part in NAME_AND_ADDRESS_PARTS:
        found = node.get(part)
        items = found if isinstance(found, list) else [found]
        yield from (item for item in items if isinstance(item, str))


def token_values(node: Any) -> Iterator[tuple[str | None, str]]:
    """(system, code) of a code, boolean, Coding, each Coding of a CodeableConcept, Identifier or
    ContactPoint."""
    if node is True or node is False:
        yield None, str(node).lower()
    elif isinstance(node, str):
        yield None, node
    elif isinstance(node, dict):
        codings = node.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                yield from token_values(coding)
        elif isinstance(node.get("code"), str):
            yield node.get("system"), node["code"]
        elif isinstance(node.get("value"), str):
            yield node.get("system"), node["value"]


def parse_reference(ref: str) -> tuple[str | None, str] | None:
    """(type, id) of a literal reference: relative ``Type/id``, absolute, or versioned
    (``.../_history/n``); a URN or a typeless one has no type; a local ``#id`` is none."""
    if ref == "" or ref[0] == "#":
        return None
    if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
        return None, ref
    segments = ref.partition("?")[0].split("/")
    while segments and segments[-1] == "":
        segments.pop()
    if len(segments) >= 4 and segments[-2] == "_history":
        del segments[-2:]
    if len(segments) >= 2 and segments[-2][:1].isupper():
        return segments[-2], segments[-1]
    return None, ref


@lru_cache(maxsize=65536)  # pure; the corpus repeats its codes (two SHA-256 each otherwise)
def composite_keys(system: str | None, code: str) -> tuple[str, str]:
    """The keys of a composite's token component: the first 16 hex digits of SHA-256 over
    ``system|code``, with its system (empty if none) and with ``*`` for any system."""

    def key(sys: str) -> str:
        return hashlib.sha256(f"{sys}|{code}".encode()).hexdigest()[:16]

    return key(system or ""), key("*")


@lru_cache(maxsize=65536)  # pure; the corpus repeats its dates (an encounter's observations)
def date_range(text: str) -> tuple[str, str] | None:
    """The [low, high] a FHIR date, dateTime or instant denotes, in UTC at microseconds: its
    precision sets the width (a year, a month, a day, a minute, a second, a fraction); a value
    without a zone is UTC. None if ``text`` is not such a value."""
    text = text.strip()
    try:
        if len(text) == 4 and text.isdigit():
            low = datetime(int(text), 1, 1, tzinfo=UTC)
            high = datetime(int(text) + 1, 1, 1, tzinfo=UTC) if int(text) < 9999 else None
        elif len(text) == 7 and text[4] == "-":
            low = datetime(int(text[:4]), int(text[5:]), 1, tzinfo=UTC)
            nxt = (low.year + low.month // 12, low.month % 12 + 1)
            high = datetime(nxt[0], nxt[1], 1, tzinfo=UTC)
        elif len(text) == 10:
            low = datetime.combine(date.fromisoformat(text), time(), UTC)
            high = low + timedelta(days=1)
        else:
            low, high = _moment(text)
    except (ValueError, IndexError):
        return None
    last = HIGHEST if high is None else _text(high - timedelta(microseconds=1))
    return _text(low), last


def _moment(text: str) -> tuple[datetime, datetime]:
    if len(text) < 16 or text[10] != "T":
        raise ValueError(text)
    clock, zone = text[11:], ""
    if clock.endswith("Z"):
        clock, zone = clock[:-1], "+00:00"
    elif len(clock) > 6 and clock[-6] in "+-":
        clock, zone = clock[:-6], clock[-6:]
    whole, _, fraction = clock.partition(".")
    if whole[6:] == "60":
        whole = whole[:6] + "59"  # a leap second counts as the minute's last second
    if len(whole) == 5:
        width = timedelta(minutes=1)
    elif fraction:
        width = timedelta(microseconds=10 ** (6 - min(len(fraction), 6)))
    else:
        width = timedelta(seconds=1)
    if not fraction.isdigit() and fraction != "":
        raise ValueError(text)
    micro = (fraction + "000000")[:6]
    moment = datetime.fromisoformat(f"{text[:10]}T{whole}.{micro}{zone}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, moment + width


def _text(moment: datetime) -> str:
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T"
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}"
    )


def _clip(value: str | None) -> str | None:
    return value[:MAX_TEXT] if value is not None else None


def _date_ranges(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        found = date_range(node)
        if found:
            yield found
    elif isinstance(node, dict):
        if "start" in node or "end" in node:
            start = date_range(node["start"]) if isinstance(node.get("start"), str) else None
            end = date_range(node["end"]) if isinstance(node.get("end"), str) else None
            yield (
                start[0] if start else LOWEST,
                end[1] if end else HIGHEST,
            )
        elif isinstance(node.get("event"), list):
            for event in node["event"]:
                yield from _date_ranges(event)
