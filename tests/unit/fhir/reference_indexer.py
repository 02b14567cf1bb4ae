"""The straightforward index extraction the compiled one in carnet.fhir.indexer replaced: FHIRPath
interpreted per resource, rows as dicts. Kept as the oracle the compiled plans must match."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.dates import date_range
from carnet.fhir.definitions import Definitions, SearchParam
from carnet.fhir.fhirpath import evaluate
from carnet.fhir.indexer import (
    CONTAINS,
    IDENTIFIER,
    MAX_TEXT,
    TEXT,
    composite_keys,
    parse_reference,
    string_values,
    token_values,
)


@dataclass
class ReferenceRows:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    patient_id: str | None = None
    value_count: int = 0
    code_texts: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(kind, []).append(row)


class ReferenceIndexer:
    def __init__(self, definitions: Definitions, blind: BlindIndexer) -> None:
        self.definitions = definitions
        self.blind = blind

    def index(
        self, resource_type: str, resource_id: str, resource: dict[str, Any]
    ) -> ReferenceRows:
        out = ReferenceRows()
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
        out: ReferenceRows,
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
                out.add("token", {**row_base, "system": _clip(system), "code": _clip(code)})
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
        self, out: ReferenceRows, base: dict[str, str], param: SearchParam, node: Any
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
        second = SearchParam(param.code, second_type, param.url, param.expression, second_paths)
        for path in second_paths:
            for value in evaluate(node, path):
                for key in keys:
                    self._add(
                        out, base, replace(second, code=f"{param.code}${key}"), value, references
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
                start[0] if start else "0001-01-01T00:00:00.000000",
                end[1] if end else "9999-12-31T23:59:59.999999",
            )
        elif isinstance(node.get("event"), list):
            for event in node["event"]:
                yield from _date_ranges(event)
