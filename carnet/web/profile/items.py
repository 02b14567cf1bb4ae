"""The profile's items as the caller reads and writes them: every call is the signed-in
person's own FHIR interaction (``ctx=caller.ctx``), so the policy decides (the person's own
record, or one they represent) and the engine audits each read and write as that person.

An item that is missing, foreign, hidden, not of this kind or not declared by the patient is
``None`` alike: the page answers it as missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carnet.caller import RequestContext
from carnet.fhir.errors import FhirError
from carnet.fhir.service import FhirService
from carnet.form_submission import SUBMISSION_ID
from carnet.web.profile.declared import declared, is_declared
from carnet.web.profile.fields import french_input
from carnet.web.profile.kind import JSON, Gettext, Kind, Line

MISSING = (403, 404, 410)
SUBMISSION_SYSTEM = "urn:carnet:form-submission"  # the add form's own id, against double sends
MAX_LISTED = 200
MAX_ID = 64  # FHIR ids: [A-Za-z0-9\-\.]{1,64}
# Which element names the patient, per type (the check that an item is of the record acted on).
PATIENT_ELEMENT = {
    "AllergyIntolerance": "patient",
    "FamilyMemberHistory": "patient",
    "Immunization": "patient",
    "RelatedPerson": "patient",
}


class WriteRefusedError(Exception):
    """The engine refused the write (the policy, a validation, a concurrent change)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"refused with {status}")
        self.status = status


@dataclass(frozen=True)
class Listed:
    res_id: str
    version: str
    line: Line
    item: JSON


def about(item: JSON, patient_id: str) -> bool:
    """Whether ``item`` is about ``patient_id`` (its subject or patient)."""
    element = PATIENT_ELEMENT.get(str(item.get("resourceType")), "subject")
    return (item.get(element) or {}).get("reference") == f"Patient/{patient_id}"


def listed(
    fhir: FhirService,
    base: str,
    ctx: RequestContext,
    kind: Kind,
    patient_id: str,
    gettext: Gettext,
) -> list[Listed]:
    """The items of ``kind`` the patient declared, newest first."""
    params = [("patient", patient_id), *kind.search, ("_count", str(MAX_LISTED))]
    bundle = fhir.search(base, kind.res_type, params, ctx=ctx)
    found = []
    for entry in bundle.get("entry") or []:
        item = entry.get("resource") or {}
        if item.get("resourceType") != kind.res_type or not is_declared(item):
            continue
        if not kind.matches(item):
            continue
        version = str((item.get("meta") or {}).get("versionId") or "")
        found.append(Listed(str(item.get("id")), version, kind.line(item, gettext), item))
    found.sort(key=lambda i: str((i.item.get("meta") or {}).get("lastUpdated") or ""), reverse=True)
    return found


def read(
    fhir: FhirService, ctx: RequestContext, kind: Kind, item_id: str, patient_id: str
) -> JSON | None:
    """One item the patient declared, of ``kind``, in ``patient_id``'s record; else None."""
    if len(item_id) > MAX_ID:
        return None  # no FHIR id is longer: never read another item by a truncated address
    try:
        item = fhir.read(kind.res_type, item_id, ctx=ctx).body or {}
    except FhirError as exc:
        if exc.status in MISSING:
            return None
        raise
    if not (is_declared(item) and kind.matches(item) and about(item, patient_id)):
        return None
    return item


def create(
    fhir: FhirService, ctx: RequestContext, kind: Kind, body: JSON, submission: str | None = None
) -> str:
    """Store a new declared item; its id. With the form's ``submission`` id, a form sent again
    (a lost answer, a crash mid-write, a double click) finds the item it stored the first time."""
    item, condition = declared(body), None
    if submission is not None and SUBMISSION_ID.fullmatch(submission):
        meta = item["meta"]
        item["meta"] = {
            **meta,
            "tag": [*meta["tag"], {"system": SUBMISSION_SYSTEM, "code": submission}],
        }
        condition = f"_tag={SUBMISSION_SYSTEM}|{submission}"
    try:
        return fhir.create(kind.res_type, item, if_none_exist=condition, ctx=ctx).stored.res_id
    except FhirError as exc:
        if exc.status in (400, 403, 404, 409, 422):
            raise WriteRefusedError(exc.status) from None
        raise


def update(
    fhir: FhirService, ctx: RequestContext, kind: Kind, item_id: str, version: str, body: JSON
) -> None:
    """Replace an item by the new body, only if it is still at ``version`` (else 412)."""
    try:
        fhir.update(
            kind.res_type,
            item_id,
            {**declared(body), "id": item_id},
            # a version that is not a number matches none: refused as a change made meanwhile
            if_match=f'W/"{version if version.isdigit() else 0}"' if version else None,
            ctx=ctx,
        )
    except FhirError as exc:
        if exc.status in (400, 403, 404, 405, 409, 412, 422):
            raise WriteRefusedError(exc.status) from None
        raise


def delete(fhir: FhirService, ctx: RequestContext, kind: Kind, item_id: str) -> None:
    try:
        fhir.delete(kind.res_type, item_id, ctx=ctx)
    except FhirError as exc:
        if exc.status in (403, 404, 409):
            raise WriteRefusedError(exc.status) from None
        raise


def values_for_form(kind: Kind, item: dict[str, Any]) -> dict[str, str]:
    """The form's values for editing ``item``: partial dates as a person writes them."""
    values = kind.values_of(item)
    for field in kind.fields:
        value = values.get(field.name, "")
        values[field.name] = french_input(value) if field.kind == "partial-date" else value
    return values
