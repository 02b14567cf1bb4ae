"""Small FHIR JSON builders: ids, references, codings, quantities, addresses, bundles."""

from __future__ import annotations

import uuid
from typing import Any, Final

from carnet.demo.communes import Commune
from carnet.demo.systems import UCUM

JSON = dict[str, Any]

# Fixed namespace so ids are stable across runs, machines and Python versions.
_ID_NAMESPACE: Final = uuid.UUID("6f1c8a52-3d0e-5b7a-9c4e-2a8d17f0b3e9")


def resource_id(seed: int, key: str) -> str:
    """Return the deterministic id (uuid5) of the resource identified by ``seed`` and ``key``."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{seed}:{key}"))


def ref(resource_type: str, rid: str) -> JSON:
    return {"reference": f"{resource_type}/{rid}"}


def entry(resource: JSON) -> JSON:
    rtype = resource["resourceType"]
    rid = resource["id"]
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
    }


def bundle(resources: list[JSON]) -> JSON:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry(r) for r in resources],
    }


def coding(system: str, code: str, display: str) -> JSON:
    return {"system": system, "code": code, "display": display}


def concept(system: str, code: str, display: str, text: str | None = None) -> JSON:
    result: JSON = {"coding": [coding(system, code, display)]}
    if text:
        result["text"] = text
    return result


def quantity(value: float, unit: str, code: str) -> JSON:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def address(line: str, commune: Commune, use: str) -> JSON:
    return {
        "use": use,
        "type": "physical",
        "line": [line],
        "city": commune.name,
        "postalCode": commune.postal_code,
        "country": "FR",
    }
