"""_summary and _elements: return part of each resource, marked SUBSETTED as the spec asks."""

from __future__ import annotations

from typing import Any

from carnet.fhir.definitions import Definitions

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
_ALWAYS = ("resourceType", "id", "meta")


def _keep(body: dict[str, Any], names: set[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in body.items():
        base = key.lstrip("_")
        if (
            key in _ALWAYS
            or base in names
            or any(base.startswith(n) and base[len(n) : len(n) + 1].isupper() for n in names)
        ):
            kept[key] = value
    meta = dict(kept.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    kept["meta"] = meta
    return kept


def shape(
    definitions: Definitions, body: dict[str, Any], summary: str, elements: tuple[str, ...]
) -> dict[str, Any]:
    """The body as _summary / _elements ask (unchanged when neither applies)."""
    res_type = str(body.get("resourceType"))
    mandatory = set(definitions.mandatory_elements.get(res_type, ()))
    if summary == "true":
        return _keep(body, set(definitions.summary_elements.get(res_type, ())) | mandatory)
    if summary == "text":
        return _keep(body, {"text"} | mandatory)
    if summary == "data":
        return _keep(body, {k.lstrip("_") for k in body if k != "text"})
    if elements:
        return _keep(body, set(elements) | mandatory)
    return body
