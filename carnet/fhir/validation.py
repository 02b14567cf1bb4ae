"""Structural validation of resources against the FHIR R4 JSON schema and required elements.

The schema (checked by jsonschema-rs, tens of thousands of resources a second) enforces datatypes,
formats, unknown elements and required code bindings; the required-element table derived from the
StructureDefinitions adds cardinality (e.g. Observation.status 1..1) that the schema leaves out.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from threading import Lock
from typing import Any

import jsonschema_rs
import orjson

from carnet.fhir.definitions import Definitions, RequiredElement
from carnet.fhir.errors import FhirError, Issue, bad_request, unprocessable

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
MAX_ISSUES = 20
MAX_NESTING = 254
"""JSON objects and arrays inside one another, at most: orjson's own limit (``orjson.dumps``
raises beyond it), which every body must pass to be stored, so one C-speed serialisation checks
it (a Python walk of every node cost more than the schema validation). Measured at this depth:
jsonschema-rs validates (it overflowed a 512 KiB thread stack at 1,000 levels, which
``orjson.loads`` accepts), the indexer's FHIRPath and the recursive walks here stay far from
Python's recursion limit. tests/unit/fhir/test_nesting.py pins the limit."""


# One lock for every compile: two threads meeting a new type compile it once.
_COMPILE_LOCK = Lock()


class Validator:
    """Validates one resource at a time; compiles a schema per resource type on first use."""

    def __init__(self, definitions: Definitions, max_resource_bytes: int | None = None) -> None:
        self.definitions = definitions
        # One resource's cap, checked here because every write validates (API, transaction
        # entries, imports, deposits): the request-body cap alone misses files and Bundles.
        self.max_resource_bytes = max_resource_bytes
        self._validators = definitions.compiled_schemas

    def _schema_validator(self, resource_type: str) -> Any:
        found = self._validators.get(resource_type)
        if found is None:
            with _COMPILE_LOCK:
                found = self._validators.get(resource_type)
                if found is None:
                    found = jsonschema_rs.Draft6Validator(
                        self.definitions.type_schema(resource_type)
                    )
                    self._validators[resource_type] = found
        return found

    def check_type(self, resource: Any, expected: str | None = None) -> str:
        """The resource's type, or a 400 if the body is not a known FHIR resource."""
        if not isinstance(resource, dict):
            raise bad_request("body is not a JSON object")
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str) or not resource_type:
            raise bad_request("resource has no resourceType", "resourceType")
        if resource_type not in self.definitions.resource_types:
            raise bad_request(f"unknown resourceType '{resource_type}'", "resourceType")
        if expected is not None and resource_type != expected:
            raise bad_request(
                f"resourceType '{resource_type}' does not match the URL type '{expected}'",
                "resourceType",
            )
        return resource_type

    def validate(self, resource: Any, expected: str | None = None) -> str:
        """Raise a FhirError (400 or 422) describing every problem; return the type if valid."""
        resource_type = self.check_type(resource, expected)
        raw = check_nesting(resource)
        if self.max_resource_bytes is not None and len(raw) > self.max_resource_bytes:
            raise FhirError.of(
                413, "too-long", f"resource exceeds {self.max_resource_bytes} bytes", resource_type
            )
        issues = self._problems(resource_type, resource)
        if raw.count(b'"resourceType"') > 1:  # resources inside: Bundle entries, contained
            for location, nested_type, nested in self._nested(resource_type, resource):
                issues.extend(
                    Issue(i.code, f"{location}: {i.diagnostics}", within(location, i.expression))
                    for i in self._problems(nested_type, nested)
                )
        if not issues:
            issues.extend(_impossible_dates(resource_type, resource, raw))
        if issues:
            raise unprocessable(_dedupe(issues)[:MAX_ISSUES])
        return resource_type

    def _problems(self, resource_type: str, resource: dict[str, Any]) -> list[Issue]:
        """Schema problems and missing elements of one resource, one issue each; a resource
        inside it that fails is left to its own check (the schema would report it whole, its
        JSON in the message)."""
        issues: list[Issue] = []
        for error in self._schema_validator(resource_type).iter_errors(resource):
            inner_resource = error.instance_path and self._is_resource(error.instance)
            if not (inner_resource and type(error.kind).__name__ in ("OneOfNotValid", "AnyOf")):
                issues.extend(_issues(resource_type, error))
            if len(issues) >= MAX_ISSUES:
                break
        # one issue per problem: every missing element, whatever else is wrong
        issues.extend(self._missing_required(resource_type, resource))
        return issues

    def _is_resource(self, node: Any) -> bool:
        return (
            isinstance(node, dict) and node.get("resourceType") in self.definitions.resource_types
        )

    def _nested(
        self, resource_type: str, resource: dict[str, Any]
    ) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(location, type, body) of every resource inside ``resource``, at any depth."""
        stack: list[tuple[str, Any]] = [(resource_type, resource)]
        while stack:
            location, node = stack.pop()
            if isinstance(node, list):
                stack.extend((f"{location}[{i}]", item) for i, item in enumerate(node))
            elif isinstance(node, dict):
                if node is not resource and self._is_resource(node):
                    yield location, node["resourceType"], node
                stack.extend((f"{location}.{k}", v) for k, v in node.items())

    def validate_bundle_shell(self, bundle: dict[str, Any]) -> None:
        """Validate a transaction/batch Bundle without its entry resources (validated one by one)."""
        entries = bundle.get("entry")
        shell = dict(bundle)
        if isinstance(entries, list):
            shell["entry"] = [
                {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
                for e in entries
            ]
        self.validate(shell, "Bundle")

    def _missing_required(self, resource_type: str, resource: dict[str, Any]) -> Iterator[Issue]:
        for req in self.definitions.required.get(resource_type, ()):
            for location, parent in _walk(resource, req.parent, resource_type):
                if not _present(parent, req):
                    # FHIRPath names a choice element without [x]; the diagnostics keep it
                    name = f"{req.name}[x]" if req.choice else req.name
                    yield Issue(
                        "required",
                        f"{location}.{name} is required (minimum cardinality 1)",
                        f"{location}.{req.name}",
                    )


def _present(node: dict[str, Any], req: RequiredElement) -> bool:
    if req.choice:
        return any(
            k.startswith(req.name) and k[len(req.name) : len(req.name) + 1].isupper() for k in node
        )
    return req.name in node or f"_{req.name}" in node


def _walk(
    node: dict[str, Any], parent: tuple[str, ...], location: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    if not parent:
        yield location, node
        return
    head, rest = parent[0], parent[1:]
    value = node.get(head)
    items = value if isinstance(value, list) else [value] if value is not None else []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            suffix = f"[{i}]" if isinstance(value, list) else ""
            yield from _walk(item, rest, f"{location}.{head}{suffix}")


def _issues(resource_type: str, error: Any) -> Iterator[Issue]:
    """The issues of one schema error, each located by a FHIRPath expression."""
    location = _expression(resource_type, error)
    kind = type(error.kind).__name__
    if kind == "Required":
        name = error.kind.property
        yield Issue(
            "required",
            f"{location}.{name} is required (minimum cardinality 1)",
            f"{location}.{name}",
        )
    elif kind == "AdditionalProperties":  # one issue per unknown element, each named
        for name in error.kind.unexpected:
            yield Issue(
                "structure",
                f"{location}.{name} is not an element of {location}",
                f"{location}.{name}",
            )
    else:
        yield Issue("structure", error.message, location)


# The schema's date patterns accept 30 February; the calendar does not.
_DATE_SHAPED = re.compile(rb'"((\d{4})-(\d{2})-(\d{2}))(?:T[^"]*)?"')


def _impossible_dates(resource_type: str, resource: dict[str, Any], raw: bytes) -> Iterator[Issue]:
    for match in _DATE_SHAPED.finditer(raw):
        year, month, day = int(match[2]), int(match[3]), int(match[4])
        if 1 <= month <= 12 and day > calendar.monthrange(max(year, 1), month)[1]:
            text = match[1].decode()
            yield Issue(
                "value", f"'{text}' is not a calendar date", _locate(resource, resource_type, text)
            )


def _locate(node: Any, location: str, text: str) -> str:
    """Path of the first string that starts with ``text`` (only walked when a bad date is found)."""
    if isinstance(node, dict):
        items: Iterator[tuple[str, Any]] = ((f"{location}.{k}", v) for k, v in node.items())
    elif isinstance(node, list):
        items = ((f"{location}[{i}]", v) for i, v in enumerate(node))
    elif isinstance(node, str) and node.startswith(text):
        return location
    else:
        return ""
    for child_location, child in items:
        found = _locate(child, child_location, text)
        if found:
            return found
    return ""


def _expression(resource_type: str, error: Any) -> str:
    expr = resource_type
    for part in error.instance_path:
        expr += f"[{part}]" if isinstance(part, int) else f".{part}"
    return expr


def _dedupe(issues: list[Issue]) -> list[Issue]:
    # A bad primitive fails both its type and its pattern; one line per location is enough.
    seen: set[str] = set()
    out = []
    for issue in issues:
        if issue.expression not in seen:
            seen.add(issue.expression)
            out.append(issue)
    return out


def within(prefix: str, expression: str) -> str:
    """``Observation.code`` of the resource at ``prefix`` as FHIRPath: ``<prefix>.code`` (the
    type name is no path step)."""
    if not expression:
        return prefix
    _, dot, path = expression.partition(".")
    return f"{prefix}.{path}" if dot else prefix


def check_nesting(value: Any) -> bytes:
    """``value`` serialised, or a 400 when it nests objects and arrays deeper than
    ``MAX_NESTING``: called before anything walks it recursively."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if "ecursion" not in str(exc):
            raise
        raise FhirError.of(
            400,
            "too-costly",
            f"the body is nested more than {MAX_NESTING} levels deep (objects and arrays)",
        ) from None


def check_id(resource_id: str) -> None:
    if not ID_PATTERN.match(resource_id):
        raise FhirError.of(400, "invalid", f"'{resource_id[:70]}' is not a valid FHIR id", "id")
