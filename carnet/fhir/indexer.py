"""Extract search-index rows from a resource at write time (as HAPI and Medplum do).

Identifying values (every string parameter, identifiers, telecom) become blind-index hashes; codes,
dates, quantities, numbers, URIs and references are indexed in clear. Free text and attachment
content are never indexed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.dates import date_range
from carnet.fhir.definitions import Definitions, SearchParam
from carnet.fhir.fhirpath import evaluate

MAX_TEXT = 255
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


@dataclass
class IndexRows:
    """Index rows of one resource, by index table kind (see carnet.fhir.models.INDEX_TABLES)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    patient_id: str | None = None
    value_count: int = 0
    code_texts: set[tuple[str, str, str]] = field(default_factory=set)  # (system, code, text)

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(kind, []).append(row)


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


class Indexer:
    """Turns a resource into index rows and finds its patient compartment."""

    def __init__(self, definitions: Definitions, blind: BlindIndexer) -> None:
        self.definitions = definitions
        self.blind = blind

    def index(self, resource_type: str, resource_id: str, resource: dict[str, Any]) -> IndexRows:
        out = IndexRows()
        base = {"res_type": resource_type, "res_id": resource_id}
        references: dict[str, list[str]] = {}
        for param in self.definitions.params_for(resource_type).values():
            if param.code in ("_id", "_lastUpdated"):
                continue
            for path in param.paths:
                for node in evaluate(resource, path):
                    self._add(out, base, param, node, references)
        out.patient_id = (
            resource_id
            if resource_type == "Patient"
            else self._compartment(resource_type, references)
        )
        return out

    def _compartment(self, resource_type: str, references: dict[str, list[str]]) -> str | None:
        for code in self.definitions.compartment.get(resource_type, ()):
            for target in references.get(code, ()):
                return target
        return None

    def _add(
        self,
        out: IndexRows,
        base: dict[str, str],
        param: SearchParam,
        node: Any,
        references: dict[str, list[str]],
    ) -> None:
        row_base = {**base, "param": param.code}
        kind = param.type
        if kind == "composite":
            self._add_composite(out, base, param, node, references)
        elif kind == "string":
            hashes: set[str] = set()
            for text in string_values(node):
                hashes |= self.blind.prefix_hashes(text)
                hashes.add(self.blind.exact_hash(text))
                # Trigrams per value: :contains needs all of them in one value, not across values.
                out.value_count += 1
                gram_param = f"{param.code}{CONTAINS}{out.value_count}"
                for digest in self.blind.gram_hashes(text):
                    out.add("string", {**base, "param": gram_param, "value": digest})
            for digest in hashes:
                out.add("string", {**row_base, "value": digest})
        elif kind == "token":
            for system, code in token_values(node):
                if param.blind:
                    code = self.blind.token_hash(code)
                out.add(
                    "token",
                    {**row_base, "system": _clip(system), "code": _clip(code)},
                )
            # :text searches the human text of codes, blind-indexed like names: once per distinct
            # code in code_text; only a text with no coding is stored on the resource itself.
            self._add_texts(out, base, param, node)
        elif kind == "reference":
            if isinstance(node, dict) and isinstance(node.get("identifier"), dict):
                ident = node["identifier"]
                if isinstance(ident.get("value"), str):
                    out.add(
                        "token",
                        {
                            **base,
                            "param": f"{param.code}{IDENTIFIER}",
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
                if target_type == "Patient" and len(target_id) <= 64:
                    references.setdefault(param.code, []).append(target_id)
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

    def _add_texts(
        self, out: IndexRows, base: dict[str, str], param: SearchParam, node: Any
    ) -> None:
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
        for system, code, display in keyed:
            for shown in (display, text):
                if isinstance(shown, str):
                    out.code_texts.add((system, code, shown))
        if text is not None and not keyed:
            for digest in self.blind.prefix_hashes(text):
                out.add("string", {**base, "param": f"{param.code}{TEXT}", "value": digest})

    def _add_composite(
        self,
        out: IndexRows,
        base: dict[str, str],
        param: SearchParam,
        node: Any,
        references: dict[str, list[str]],
    ) -> None:
        """Rows of the second component, under a param naming the first (a code): code$value."""
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
        second = SearchParam(param.code, second_type, param.url, param.expression, second_paths)
        for path in second_paths:
            for value in evaluate(node, path):
                for key in keys:
                    self._add(
                        out, base, replace(second, code=f"{param.code}${key}"), value, references
                    )


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
        found = date_range(node)
        if found:
            yield found
    elif isinstance(node, dict):
        if "start" in node or "end" in node:  # Period
            start = date_range(node["start"]) if isinstance(node.get("start"), str) else None
            end = date_range(node["end"]) if isinstance(node.get("end"), str) else None
            yield (
                start[0] if start else "0001-01-01T00:00:00.000000",
                end[1] if end else "9999-12-31T23:59:59.999999",
            )
        elif isinstance(node.get("event"), list):  # Timing
            for event in node["event"]:
                yield from _date_ranges(event)
