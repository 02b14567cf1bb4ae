"""The mark of an item the patient declared themself (or their representative for them): a
``meta.tag`` the profile writes on every item, read wherever items are listed so professionals
see "déclaré par le patient".

The tag says what the item claims; who really wrote it is the engine's own record
(``access_author``, carnet/policy/authors.py), which the policy uses. A professional who wrote
the tag on their own item would only lower the weight given to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carnet.web.i18n import N_

DECLARED_SYSTEM = "urn:carnet:provenance"
DECLARED_CODE = "patient-declared"
DECLARED_TAG = {
    "system": DECLARED_SYSTEM,
    "code": DECLARED_CODE,
    "display": "Déclaré par le patient",
}
DECLARED_LABEL = N_("déclaré par le patient")


def is_declared(resource: Mapping[str, Any]) -> bool:
    """Whether the item carries the patient-declared tag."""
    tags = (resource.get("meta") or {}).get("tag") or []
    return any(
        isinstance(t, Mapping)
        and t.get("system") == DECLARED_SYSTEM
        and t.get("code") == DECLARED_CODE
        for t in tags
    )


def declared(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the patient-declared tag (its other tags kept)."""
    meta = dict(body.get("meta") or {})
    tags = [
        t
        for t in meta.get("tag") or []
        if not (isinstance(t, Mapping) and t.get("system") == DECLARED_SYSTEM)
    ]
    meta["tag"] = [*tags, DECLARED_TAG]
    return {**body, "meta": meta}
