"""Moving a patient's references on a merge, and back on an unmerge.

A merge re-points every current resource in the duplicate (source) Patient's compartment to the
surviving (target) Patient: each reference to ``Patient/<source>`` in its body becomes
``Patient/<target>`` when it is one of ours (relative, or absolute under this server's own base:
:func:`carnet.fhir.indexer.is_local_reference`, the rule that places an item in a record; another
server's ``https://other.example/fhir/Patient/<source>`` names someone else and is left as
written), written as a new version through :class:`FhirService` in the merge's
transaction (so it is indexed, re-encrypted under the target's data key and audited). The moved
resources are recorded in ``identity_merge.moved`` (ids only) with the documents the merge released
from quarantine, so an unmerge moves exactly those back: the moved ones to the source Patient again,
the released ones to the source Patient when it has one, else back into quarantine.
"""

from __future__ import annotations

from typing import Any

from carnet.fhir.indexer import is_local_reference
from carnet.fhir.session import FhirSession

__all__ = ["move_references", "repoint"]


def _points_to(value: str, patient_id: str, local_base: str | None) -> bool:
    target = f"Patient/{patient_id}"
    if value != target and not value.endswith(f"/{target}"):
        return False
    # The indexer's own rule (one place): another server's Patient with the same id is not ours.
    return is_local_reference(value, local_base)


def repoint(body: Any, old_id: str, new_id: str, *, local_base: str | None) -> Any:
    """A copy of ``body`` with every reference of ours to ``Patient/<old_id>`` made
    ``Patient/<new_id>`` (relative, or absolute under ``local_base``, this server's FHIR base);
    the same object when nothing of ours refers to it."""
    if isinstance(body, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, value in body.items():
            if (
                key == "reference"
                and isinstance(value, str)
                and _points_to(value, old_id, local_base)
            ):
                new = value[: -len(old_id)] + new_id
            else:
                new = repoint(value, old_id, new_id, local_base=local_base)
            changed = changed or new is not value
            out[key] = new
        return out if changed else body
    if isinstance(body, list):
        items = [repoint(v, old_id, new_id, local_base=local_base) for v in body]
        changed = any(a is not b for a, b in zip(items, body, strict=True))
        return items if changed else body
    return body


def move_references(
    session: FhirSession,
    old_id: str,
    new_id: str,
    keys: list[tuple[str, str]] | None = None,
) -> list[str]:
    """Re-point the resources of ``keys`` (default: ``old_id``'s compartment, its Patient aside)
    from Patient ``old_id`` to ``new_id``; returns the ``Type/id`` of those that changed."""
    local_base = session.local_base
    moved: list[str] = []
    for stored in session.compartment_items(old_id, keys):
        if (stored.res_type, stored.res_id) == ("Patient", old_id) or stored.body is None:
            continue
        if stored.deleted:
            continue
        body = repoint(stored.body, old_id, new_id, local_base=local_base)
        if body is stored.body:
            continue
        session.update(stored.res_type, stored.res_id, dict(body), None)
        moved.append(f"{stored.res_type}/{stored.res_id}")
    return moved
