"""Patient/{id}/$summary: an International Patient Summary (IPS) document Bundle.

The Bundle is generated on each call and not stored. Its first entry is a Composition (LOINC
60591-5) whose sections follow the IPS examples: the three required sections (medications
10160-0, allergies 48765-2, problems 11450-4) always, with ``emptyReason`` and a "no information"
narrative when there is nothing to say, and immunizations, results, procedures and past illnesses
when the record has some. Then the Patient and every resource the sections reference, and what
those reference in turn (practitioners, organizations, medications, encounters), so that every
reference resolves inside the Bundle. The author is a Device named "Carnet" carried in the Bundle.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from carnet.caller import RequestContext
from carnet.fhir.dates import instant, utc_now
from carnet.fhir.operations.everything import readable_patient, references
from carnet.fhir.query import visible
from carnet.fhir.repository import StoredResource, Unit
from carnet.fhir.service import FhirService

LOINC = "http://loinc.org"
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
XHTML = "http://www.w3.org/1999/xhtml"
MAX_ENTRIES = 50  # per optional section: the most recent ones
Body = dict[str, Any]


@dataclass(frozen=True)
class Section:
    code: str
    display: str
    title: str
    types: tuple[str, ...]
    keep: Callable[[Body], bool]
    required: bool
    empty_text: str


def _code(body: Body, element: str) -> str:
    concept = body.get(element)
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return str(codings[0].get("code", "")) if codings else ""


def _active_problem(body: Body) -> bool:
    return _code(body, "clinicalStatus") in ("", "active", "recurrence", "relapse") and _confirmed(
        body
    )


def _past_problem(body: Body) -> bool:
    return _code(body, "clinicalStatus") in ("inactive", "remission", "resolved") and _confirmed(
        body
    )


def _confirmed(body: Body) -> bool:
    return _code(body, "verificationStatus") not in ("entered-in-error", "refuted")


def _current_medication(body: Body) -> bool:
    return body.get("status") in ("active", "on-hold", "intended", "unknown", "draft")


def _lab_result(body: Body) -> bool:
    if body.get("status") not in ("final", "amended", "corrected", "preliminary"):
        return False
    if body["resourceType"] == "DiagnosticReport":
        return True
    categories = body.get("category") or []
    return any(
        c.get("code") == "laboratory" for cat in categories for c in (cat.get("coding") or [])
    )


SECTIONS: tuple[Section, ...] = (
    Section(
        "10160-0",
        "History of Medication use Narrative",
        "Medication Summary",
        ("MedicationStatement", "MedicationRequest"),
        _current_medication,
        True,
        "There is no information available about the subject's medication use or administration.",
    ),
    Section(
        "48765-2",
        "Allergies and adverse reactions Document",
        "Allergies and Intolerances",
        ("AllergyIntolerance",),
        _confirmed,
        True,
        "There is no information available regarding the subject's allergies.",
    ),
    Section(
        "11450-4",
        "Problem list - Reported",
        "Problem List",
        ("Condition",),
        _active_problem,
        True,
        "There is no information available about the subject's health problems or disabilities.",
    ),
    Section(
        "11348-0",
        "History of Past illness Narrative",
        "History of Past Illness",
        ("Condition",),
        _past_problem,
        False,
        "",
    ),
    Section(
        "11369-6",
        "History of Immunization note",
        "Immunizations",
        ("Immunization",),
        lambda b: b.get("status") == "completed",
        False,
        "",
    ),
    Section(
        "30954-2",
        "Relevant diagnostic tests/laboratory data Narrative",
        "Results",
        ("Observation", "DiagnosticReport"),
        _lab_result,
        False,
        "",
    ),
    Section(
        "47519-4",
        "History of Procedures Document",
        "History of Procedures",
        ("Procedure",),
        lambda b: b.get("status") == "completed",
        False,
        "",
    ),
)
_TYPES = sorted({t for s in SECTIONS for t in s.types})


def summary(
    service: FhirService, ctx: RequestContext, base: str, patient_id: str
) -> dict[str, Any]:
    """The IPS document Bundle of one patient; 404 for an unknown patient, 410 if deleted."""
    with service.session(ctx, "summary", "Patient", patient_id) as session:
        unit = session.unit
        session.check("summary", "Patient", patient_id)
        patient = readable_patient(session, patient_id)
        vis = session.visibility("search")
        clinical = unit.compartment(patient_id, _TYPES, where=visible(vis))
        chosen: list[tuple[Section, list[StoredResource]]] = []
        for section in SECTIONS:
            members = [r for r in clinical if r.res_type in section.types and _keep(section, r)]
            if not section.required:
                members = sorted(members, key=_when, reverse=True)[:MAX_ENTRIES]
            chosen.append((section, members))
        listed: dict[tuple[str, str], StoredResource] = {}
        for _, members in chosen:
            listed.update({(r.res_type, r.res_id): r for r in members})
        content = [patient, *listed.values()]
        content += session.visible_only(vis, _closure(unit, content))
        session.record("summary", "Patient", content)
    return _document(base, patient, chosen, content)


def _keep(section: Section, stored: StoredResource) -> bool:
    return stored.body is not None and section.keep(stored.body)


def _when(stored: StoredResource) -> str:
    body = stored.body or {}
    for key in (
        "effectiveDateTime",
        "occurrenceDateTime",
        "performedDateTime",
        "issued",
        "recordedDate",
        "authoredOn",
    ):
        if isinstance(body.get(key), str):
            return str(body[key])
    period = body.get("performedPeriod") or body.get("effectivePeriod") or {}
    return str(period.get("start", stored.last_updated))


def _closure(unit: Unit, content: list[StoredResource]) -> list[StoredResource]:
    """Resources referenced from ``content`` (any compartment of this patient or none)."""
    have = {(r.res_type, r.res_id) for r in content}
    added: list[StoredResource] = []
    frontier = content
    for _ in range(3):
        wanted = [k for k in references(r.body for r in frontier) if k not in have]
        if not wanted:
            break
        patient = content[0].res_id
        frontier = [r for r in unit.load(wanted) if r.patient_id in (None, patient)]
        have.update(wanted)
        added.extend(frontier)
    return added


def _document(
    base: str,
    patient: StoredResource,
    chosen: list[tuple[Section, list[StoredResource]]],
    content: list[StoredResource],
) -> dict[str, Any]:
    now = instant(utc_now())
    device_id = str(uuid.uuid4())
    device_url = f"urn:uuid:{device_id}"
    composition_id = str(uuid.uuid4())
    sections = [
        _section(base, section, members)
        for section, members in chosen
        if members or section.required
    ]
    composition = {
        "resourceType": "Composition",
        "id": composition_id,
        "status": "final",
        "type": {
            "coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]
        },
        "subject": {"reference": f"{base}/Patient/{patient.res_id}"},
        "date": now,
        "author": [{"reference": device_url, "display": "Carnet"}],
        "title": "Patient Summary",
        "confidentiality": "N",
        "event": [
            {
                "code": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ActClass",
                                "code": "PCPR",
                            }
                        ]
                    }
                ],
                "period": {"end": now},
            }
        ],
        "section": sections,
    }
    device = {
        "resourceType": "Device",
        "id": device_id,
        "deviceName": [{"name": "Carnet", "type": "manufacturer-name"}],
        "manufacturer": "Carnet",
    }
    entries = [
        {"fullUrl": f"urn:uuid:{composition_id}", "resource": composition},
        *({"fullUrl": f"{base}/{r.res_type}/{r.res_id}", "resource": r.body} for r in content),
        {"fullUrl": device_url, "resource": device},
    ]
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": now,
        "entry": entries,
    }


def _section(base: str, section: Section, members: list[StoredResource]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "title": section.title,
        "code": {"coding": [{"system": LOINC, "code": section.code, "display": section.display}]},
    }
    if not members:
        out["text"] = {"status": "generated", "div": _div(escape(section.empty_text))}
        out["emptyReason"] = {
            "coding": [{"system": EMPTY_REASON, "code": "unavailable", "display": "Unavailable"}],
            "text": "No information available",
        }
        return out
    rows = "".join(
        f"<tr><td>{escape(_label(r.body or {}))}</td><td>{escape(_status(r.body or {}))}</td>"
        f"<td>{escape(_when(r)[:10])}</td></tr>"
        for r in members
    )
    out["text"] = {
        "status": "generated",
        "div": _div(
            "<table><thead><tr><th>Item</th><th>Status</th><th>Date</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        ),
    }
    out["entry"] = [{"reference": f"{base}/{r.res_type}/{r.res_id}"} for r in members]
    return out


def _div(inner: str) -> str:
    return f'<div xmlns="{XHTML}">{inner}</div>'


def _label(body: Body) -> str:
    for key in ("code", "vaccineCode", "medicationCodeableConcept"):
        concept = body.get(key)
        if isinstance(concept, dict):
            if concept.get("text"):
                return str(concept["text"])
            for coding in concept.get("coding") or []:
                if coding.get("display") or coding.get("code"):
                    return str(coding.get("display") or coding.get("code"))
    ref = body.get("medicationReference")
    if isinstance(ref, dict):
        return str(ref.get("display") or ref.get("reference", ""))
    return body.get("resourceType", "")  # type: ignore[no-any-return]


def _status(body: Body) -> str:
    for key in ("clinicalStatus", "verificationStatus"):
        code = _code(body, key)
        if code:
            return code
    return str(body.get("status", ""))
