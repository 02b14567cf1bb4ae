"""The CapabilityStatement, generated from what the code implements (the search registry)."""

from __future__ import annotations

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


def capability_statement(definitions: Definitions, base: str, published: str) -> dict[str, Any]:
    """Resources, interactions and search parameters exactly as the server serves them."""
    supported_types = {*Compiler.SUPPORTED_PARAM_TYPES, "composite"}
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
        resources.append(
            {
                "type": res_type,
                "interaction": [{"code": code} for code in INTERACTIONS],
                "versioning": "versioned-update",
                "readHistory": True,
                "updateCreate": True,
                "conditionalCreate": True,
                "conditionalUpdate": True,
                "conditionalDelete": "single",
                "searchParam": params,
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "kind": "instance",
        "software": {"name": "Carnet", "version": __version__},
        "implementation": {"description": "Carnet FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
            }
        ],
    }
