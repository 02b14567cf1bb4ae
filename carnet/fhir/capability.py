"""The CapabilityStatement, generated from what the code implements: the search registry (search
parameters, _include and _revinclude), the operation routes the application serves, and the
security block the authorisation server hands in (SMART clients read their endpoints there)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from carnet import __version__
from carnet.fhir.definitions import Definitions
from carnet.fhir.query import Compiler

INTERACTIONS = (
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system")
FHIR_PREFIX = "/fhir/"
# The published definition of operations that have one; others get a Carnet URN.
OPERATION_DEFINITIONS = {
    ("Patient", "everything"): "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    ("Patient", "summary"): "http://hl7.org/fhir/uv/ips/OperationDefinition/summary",
    ("Patient", "export"): "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
    ("Group", "export"): "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
    (None, "export"): "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
}


def operations(
    route_paths: Iterable[str], resource_types: Iterable[str]
) -> dict[str | None, list[dict[str, str]]]:
    """The operations the application routes, by resource type (None: system level).

    An operation is a route under /fhir whose last segment is ``$name``
    (``/fhir/Patient/{id}/$everything``, ``/fhir/$export``); the endpoints an operation answers
    on afterwards (``/fhir/$export-status/{job_id}``) end in a parameter and are not operations.
    """
    types = set(resource_types)
    found: dict[str | None, dict[str, str]] = {}
    for path in route_paths:
        if not path.startswith(FHIR_PREFIX):
            continue
        segments = path[len(FHIR_PREFIX) :].split("/")
        if not segments[-1].startswith("$"):
            continue
        name = segments[-1][1:]
        owner = segments[0] if len(segments) > 1 and segments[0] in types else None
        if len(segments) > 1 and owner is None:
            continue
        definition = OPERATION_DEFINITIONS.get((owner, name), f"urn:carnet:operation:{name}")
        found.setdefault(owner, {})[name] = definition
    return {
        owner: [{"name": n, "definition": d} for n, d in sorted(ops.items())]
        for owner, ops in found.items()
    }


def _includes(definitions: Definitions) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``_include`` values per searched type and ``_revinclude`` values per referenced type, as
    the search parser accepts them (``Type:parameter`` of a reference parameter)."""
    forward: dict[str, list[str]] = {}
    reverse: dict[str, set[str]] = {}
    for source in sorted(definitions.resource_types):
        for code, param in sorted(definitions.params_for(source).items()):
            if param.type != "reference":
                continue
            forward.setdefault(source, []).append(f"{source}:{code}")
            for target in param.targets:
                reverse.setdefault(target, set()).add(f"{source}:{code}")
    return forward, {t: sorted(v) for t, v in reverse.items()}


def capability_statement(
    definitions: Definitions,
    base: str,
    published: str,
    *,
    route_paths: Iterable[str] = (),
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Resources, interactions, search parameters, includes and operations exactly as the server
    serves them; ``route_paths`` are the application's routes, ``security`` the
    ``rest.security`` block of its authorisation server."""
    supported_types = {*Compiler.SUPPORTED_PARAM_TYPES, "composite"}
    forward, reverse = _includes(definitions)
    served = operations(route_paths, definitions.resource_types)
    resources = []
    for res_type in sorted(definitions.resource_types):
        params = [
            {"name": "_id", "type": "token"},
            {"name": "_lastUpdated", "type": "date"},
        ]
        for code, param in sorted(definitions.params_for(res_type).items()):
            if code in ("_id", "_lastUpdated") or param.type not in supported_types:
                continue
            params.append({"name": code, "definition": param.url, "type": param.type})
        entry: dict[str, Any] = {
            "type": res_type,
            "interaction": [{"code": code} for code in INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchInclude": ["*", *forward.get(res_type, [])],
            "searchRevInclude": reverse.get(res_type, []),
            "searchParam": params,
        }
        if res_type in served:
            entry["operation"] = served[res_type]
        resources.append(entry)
    rest: dict[str, Any] = {"mode": "server"}
    if security is not None:
        rest["security"] = security
    rest["resource"] = resources
    rest["interaction"] = [{"code": code} for code in SYSTEM_INTERACTIONS]
    if None in served:
        rest["operation"] = served[None]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "kind": "instance",
        "software": {"name": "Carnet", "version": __version__},
        "implementation": {"description": "Carnet FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
