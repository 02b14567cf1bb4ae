"""Extract search-index rows from a resource at write time (as HAPI and Medplum do).

Identifying values (every string parameter, identifiers, telecom) become blind-index hashes; codes,
dates, quantities, numbers, URIs and references are indexed in clear. Free text and attachment
content are never indexed.

Each resource type's search parameters are compiled once into a plan of closures (FHIRPath getters,
one emitter per parameter type), and a parameter whose first element the resource lacks costs one
dict lookup: interpreting ~40 parameters' paths per resource used to cost more than the database.
Rows are tuples in their table's column order (``KIND_COLUMNS``), ready for executemany/COPY.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.dates import date_range
from carnet.fhir.definitions import Definitions, SearchParam
from carnet.fhir.fhirpath import Getter, Path, compile_getter

MAX_TEXT = 255
# Characters of one string value that are indexed: a 25 MB description once made ~25 million
# trigram rows and held SQLite's write lock for 25 s. Searches match a value by its beginning.
MAX_INDEXED_CHARS = 1024
_STRING_PARTS = (
    "family",
    "given",
    "prefix",
    "suffix",
    "text",
    "line",
    "city",
    "district",
    "state",
    "postalCode",
    "country",
)


# Derived index "parameters" stored beside the real ones (param codes never contain ':').
CONTAINS = ":contains:"  # + value number: trigram hashes of one string value
TEXT = ":text"  # prefix hashes of a token's text and displays
IDENTIFIER = ":identifier"  # blind hash of a reference's logical identifier

_OWNER = ("res_type", "res_id", "param")
# Column order of each index table's rows (carnet.fhir.models.INDEX_TABLES).
KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "string": (*_OWNER, "value"),
    "token": (*_OWNER, "system", "code"),
    "reference": (*_OWNER, "target_type", "target_id"),
    "date": (*_OWNER, "low", "high"),
    "quantity": (*_OWNER, "value", "system", "code"),
    "number": (*_OWNER, "value"),
    "uri": (*_OWNER, "value"),
}
_LOWEST = "0001-01-01T00:00:00.000000"
_HIGHEST = "9999-12-31T23:59:59.999999"

Row = tuple[Any, ...]


@dataclass
class IndexRows:
    """Index rows of one resource, by index table kind, as tuples in ``KIND_COLUMNS`` order."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    patient_id: str | None = None
    value_count: int = 0
    code_texts: set[tuple[str, str, str]] = field(default_factory=set)  # (system, code, text)


@lru_cache(maxsize=65536)
def parse_reference(ref: str) -> tuple[str | None, str] | None:
    """(type, id) of a literal reference 'Type/id', '.../Type/id/_history/n' or an absolute URL."""
    if not ref or ref.startswith("#"):
        return None
    if ref.startswith(("urn:uuid:", "urn:oid:")):
        return None, ref
    parts = ref.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2], parts[-1]
    return None, ref


def is_local_reference(ref: str, local_base: str | None) -> bool:
    """Whether a literal reference names a resource of this server: a relative one, or an
    absolute one under this server's own FHIR base. ``https://other.example/fhir/Patient/123``
    names another server's Patient, which is not ours even when its id is the same: such a
    reference puts no item in a record here (the item is left in none, for system callers only,
    rather than attached to whoever holds that id)."""
    if "://" not in ref:
        return True
    return local_base is not None and ref.startswith(local_base.rstrip("/") + "/")


def string_values(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for part in _STRING_PARTS:
            value = node.get(part)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    yield item


def token_values(node: Any) -> Iterator[tuple[str | None, str]]:
    """(system, code) pairs of a code, boolean, Coding, CodeableConcept, Identifier or ContactPoint."""
    if isinstance(node, bool):
        yield None, "true" if node else "false"
    elif isinstance(node, str):
        yield None, node
    elif isinstance(node, dict):
        if isinstance(node.get("coding"), list):
            for coding in node["coding"]:
                yield from token_values(coding)
        elif "code" in node and isinstance(node["code"], str):
            yield node.get("system"), node["code"]
        elif "value" in node and isinstance(node["value"], str):
            yield node.get("system"), node["value"]


# Many resources share a date (an encounter's observations) and date parsing is costly.
_date_range = lru_cache(maxsize=65536)(date_range)


class _Extraction:
    """The state of one resource's extraction; emitters append rows for one node each."""

    __slots__ = (
        "blind",
        "code_texts",
        "local_base",
        "max_chars",
        "out",
        "references",
        "res_id",
        "res_type",
        "rows",
    )

    def __init__(
        self,
        blind: BlindIndexer,
        res_type: str,
        res_id: str,
        max_chars: int = MAX_INDEXED_CHARS,
        local_base: str | None = None,
    ) -> None:
        self.blind = blind
        self.max_chars = max_chars
        self.local_base = local_base
        self.res_type = res_type
        self.res_id = res_id
        self.out = IndexRows()
        self.rows = self.out.rows
        self.code_texts = self.out.code_texts
        self.references: dict[str, list[str]] = {}

    def add(self, kind: str, row: Row) -> None:
        found = self.rows.get(kind)
        if found is None:
            self.rows[kind] = [row]
        else:
            found.append(row)

    def string(self, code: str, node: Any) -> None:
        rt, rid, out = self.res_type, self.res_id, self.out
        hashes: set[str] = set()
        for text in string_values(node) if not isinstance(node, str) else (node,):
            if len(text) > self.max_chars:
                # Prefixes and trigrams of the first characters only; the exact hash of the whole
                # value (one pass of BLAKE2b) still lets :exact find it.
                terms, grams = self.blind.string_terms(text[: self.max_chars])
                terms = (terms - {self.blind.exact_hash(text[: self.max_chars])}) | {
                    self.blind.exact_hash(text)
                }
            else:
                terms, grams = self.blind.string_terms(text)
            hashes |= terms
            # Trigrams per value: :contains needs all of them in one value, not across values.
            out.value_count += 1
            gram_param = f"{code}{CONTAINS}{out.value_count}"
            for digest in grams:
                self.add("string", (rt, rid, gram_param, digest))
        for digest in hashes:
            self.add("string", (rt, rid, code, digest))

    def token(self, code: str, node: Any, blind: bool) -> None:
        rt, rid = self.res_type, self.res_id
        for system, value in token_values(node):
            if blind:
                value = self.blind.token_hash(value)
            self.add("token", (rt, rid, code, _clip(system), _clip(value)))
        # :text searches the human text of codes, blind-indexed like names: once per distinct
        # code in code_text; only a text with no coding is stored on the resource itself.
        if isinstance(node, dict):
            self.texts(code, node)

    def texts(self, code: str, node: dict[str, Any]) -> None:
        found = node.get("coding")
        codings: list[Any] = found if isinstance(found, list) else [node]
        text = node.get("text")
        text = text[: self.max_chars] if isinstance(text, str) else None
        keyed = False
        for c in codings:
            if isinstance(c, dict) and isinstance(c.get("code"), str):
                keyed = True
                key = (str(c.get("system") or "")[:MAX_TEXT], c["code"][:MAX_TEXT])
                display = c.get("display")
                if isinstance(display, str):
                    self.code_texts.add((*key, display[: self.max_chars]))
                if text is not None:
                    self.code_texts.add((*key, text))
        if text is not None and not keyed:
            param = f"{code}{TEXT}"
            for digest in self.blind.prefix_hashes(text):
                self.add("string", (self.res_type, self.res_id, param, digest))

    def reference(self, code: str, node: Any) -> None:
        rt, rid = self.res_type, self.res_id
        if isinstance(node, dict):
            ident = node.get("identifier")
            if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                self.add(
                    "token",
                    (
                        rt,
                        rid,
                        f"{code}{IDENTIFIER}",
                        _clip(ident.get("system")),
                        self.blind.token_hash(ident["value"]),
                    ),
                )
            ref = node.get("reference")
        else:
            ref = node
        if not isinstance(ref, str):
            return
        parsed = parse_reference(ref)
        if parsed is not None:
            target_type, target_id = parsed
            self.add("reference", (rt, rid, code, target_type, _clip(target_id)))
            if (
                target_type == "Patient"
                and len(target_id) <= 64
                and is_local_reference(ref, self.local_base)
            ):
                self.references.setdefault(code, []).append(target_id)

    def date(self, code: str, node: Any) -> None:
        rt, rid = self.res_type, self.res_id
        for low, high in _date_ranges(node):
            self.add("date", (rt, rid, code, low, high))

    def quantity(self, code: str, node: Any) -> None:
        if isinstance(node, dict):
            value = node.get("value")
            if isinstance(value, int | float):
                self.add(
                    "quantity",
                    (
                        self.res_type,
                        self.res_id,
                        code,
                        float(value),
                        _clip(node.get("system")),
                        _clip(node.get("code") or node.get("unit")),
                    ),
                )

    def number(self, code: str, node: Any) -> None:
        if isinstance(node, int | float) and not isinstance(node, bool):
            self.add("number", (self.res_type, self.res_id, code, float(node)))

    def uri(self, code: str, node: Any) -> None:
        if isinstance(node, str):
            self.add("uri", (self.res_type, self.res_id, code, node[:512]))


# An emitter adds the rows of one node reached by a parameter's path, under a parameter code.
Emitter = Callable[[_Extraction, str, Any], None]


def _emitter(kind: str, blind: bool) -> Emitter | None:
    if kind == "token":
        return lambda x, code, node: x.token(code, node, blind)
    return {
        "string": _Extraction.string,
        "reference": _Extraction.reference,
        "date": _Extraction.date,
        "quantity": _Extraction.quantity,
        "number": _Extraction.number,
        "uri": _Extraction.uri,
    }.get(kind)


@dataclass(frozen=True)
class _Term:
    """One path of one parameter: where to look first, how to get there, what to emit."""

    code: str
    root: str | None  # the resource's element the path starts with; None when it cannot be told
    get: Getter
    emit: Callable[[_Extraction, Any], None]


def _root(path: Path) -> str | None:
    first = path[0] if path else None
    return first.name if first is not None and first.name and not first.choice else None


def _compile_param(param: SearchParam) -> list[_Term]:
    emit_node: Callable[[_Extraction, Any], None]
    if param.type == "composite":
        emit_node = _composite_emitter(param)
    else:
        emitter = _emitter(param.type, param.blind)
        if emitter is None:
            return []
        code = param.code

        def emit_node(x: _Extraction, node: Any, emitter: Emitter = emitter) -> None:
            emitter(x, code, node)

    return [_Term(param.code, _root(path), compile_getter(path), emit_node) for path in param.paths]


def _composite_emitter(param: SearchParam) -> Callable[[_Extraction, Any], None]:
    """Rows of the second component, under a param naming the first (a code): code$value."""
    (_, first_paths), (second_type, second_paths) = param.components
    first = [compile_getter(p) for p in first_paths]
    second = [compile_getter(p) for p in second_paths]
    emitter = _emitter(second_type, blind=False)  # named code$key: never a blind token code
    code = param.code

    def emit(x: _Extraction, node: Any) -> None:
        if emitter is None:
            return
        keys = {
            key
            for get in first
            for found in get(node)
            for system, value in token_values(found)
            for key in composite_keys(system, value)
        }
        if not keys:
            return
        for get in second:
            for value in get(node):
                for key in keys:
                    emitter(x, f"{code}${key}", value)

    return emit


class Indexer:
    """Turns a resource into index rows and finds its patient compartment."""

    def __init__(
        self,
        definitions: Definitions,
        blind: BlindIndexer,
        max_chars: int = MAX_INDEXED_CHARS,
        local_base: str | None = None,
    ) -> None:
        self.definitions = definitions
        self.blind = blind
        self.max_chars = max_chars
        self.local_base = local_base
        """This server's FHIR base: absolute references under it are local (is_local_reference)."""
        self._plans: dict[str, tuple[_Term, ...]] = {}

    def _plan(self, resource_type: str) -> tuple[_Term, ...]:
        plan = self._plans.get(resource_type)
        if plan is None:
            plan = tuple(
                term
                for param in self.definitions.params_for(resource_type).values()
                if param.code not in ("_id", "_lastUpdated")
                for term in _compile_param(param)
            )
            self._plans[resource_type] = plan
        return plan

    def index(self, resource_type: str, resource_id: str, resource: dict[str, Any]) -> IndexRows:
        x = _Extraction(self.blind, resource_type, resource_id, self.max_chars, self.local_base)
        get_element = resource.get
        # Terms run in registry order, nodes in document order: the :contains value numbers
        # depend on it.
        for term in self._plan(resource_type):
            if term.root is not None and get_element(term.root) is None:
                continue
            for node in term.get(resource):
                term.emit(x, node)
        out = x.out
        out.patient_id = (
            resource_id
            if resource_type == "Patient"
            else self._compartment(resource_type, x.references)
        )
        return out

    def _compartment(self, resource_type: str, references: dict[str, list[str]]) -> str | None:
        for code in self.definitions.compartment.get(resource_type, ()):
            for target in references.get(code, ()):
                return target
        return None


@lru_cache(maxsize=65536)
def composite_keys(system: str | None, code: str) -> tuple[str, str]:
    """Keys of a composite's first (token) component: with its system, and for any system."""
    return composite_key(system or "", code), composite_key("*", code)


def composite_key(system: str, code: str) -> str:
    # A compact, fixed-width stand-in for system|code (codes are indexed in clear anyway).
    return hashlib.sha256(f"{system}|{code}".encode()).hexdigest()[:16]


def _clip(value: str | None) -> str | None:
    return value[:MAX_TEXT] if value is not None else None


def _date_ranges(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        found = _date_range(node)
        if found:
            yield found
    elif isinstance(node, dict):
        if "start" in node or "end" in node:  # Period
            start = _date_range(node["start"]) if isinstance(node.get("start"), str) else None
            end = _date_range(node["end"]) if isinstance(node.get("end"), str) else None
            yield (start[0] if start else _LOWEST, end[1] if end else _HIGHEST)
        elif isinstance(node.get("event"), list):  # Timing
            for event in node["event"]:
                yield from _date_ranges(event)
