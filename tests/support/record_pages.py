"""A small record for the portal's record pages: a patient with documents of several classes
(one PDF, one PNG), an author, lab results with reference ranges, weight and blood-pressure
series, a vaccination, an allergy, a treatment, a condition; a foreign patient's document; a
document a professional hid from the patient (INVISIBLE_PATIENT)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from carnet.app import Services
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.demo.pdf import make_pdf
from carnet.policy.enforce import note_care
from tests.support.caller import AS_LOCAL_OPERATOR

LOINC = "http://loinc.org"
CARE_RPPS = "10000000077"
# A one-page PDF (a real one: deposits are screened) and a 1x1 PNG: enough bytes to check what is served, in what type.
PDF = make_pdf("Compte rendu", ["Consultation du 1er mars 2025."])  # screening parses it
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@dataclass
class RecordWorld:
    patient_id: str
    other_patient_id: str
    consult: str  # a consultation report (class 10), PDF, by the practitioner
    imaging: str  # an imaging report (class 31), PNG
    letter: str  # a type the class table does not know: "Autres"
    foreign: str  # another patient's document
    hidden: str  # hidden from the patient by a professional


def _create(services: Services, body: dict[str, Any]) -> str:
    return services.fhir.create(body["resourceType"], body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _concept(code: str, text: str, system: str = LOINC) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": text}], "text": text}


def _document(
    pid: str, code: str, title: str, day: str, data: bytes, kind: str, author: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": _concept(code, title),
        "subject": {"reference": f"Patient/{pid}"},
        "date": f"{day}T10:00:00Z",
        "description": title,
        "content": [{"attachment": {"contentType": kind, "data": base64.b64encode(data).decode()}}],
    }
    if author:
        body["author"] = [{"reference": author}]
    return body


def _lab(
    pid: str, code: str, text: str, value: float, unit: str, low: float, high: float, day: str
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            _concept(
                "laboratory",
                "Laboratory",
                "http://terminology.hl7.org/CodeSystem/observation-category",
            )
        ],
        "code": _concept(code, text),
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"{day}T08:00:00Z",
        "valueQuantity": {"value": value, "unit": unit},
        "referenceRange": [
            {"low": {"value": low, "unit": unit}, "high": {"value": high, "unit": unit}}
        ],
    }


def build_record(services: Services) -> RecordWorld:
    """The record above, written by the operator (the loaders' caller)."""
    pid = _create(
        services, {"resourceType": "Patient", "gender": "female", "birthDate": "1970-04-02"}
    )
    other = _create(
        services, {"resourceType": "Patient", "gender": "male", "birthDate": "1960-01-01"}
    )
    doctor = _create(
        services,
        {
            "resourceType": "Practitioner",
            "name": [{"family": "Martin", "given": ["Claire"], "prefix": ["Dr"]}],
        },
    )
    author = f"Practitioner/{doctor}"
    consult = _create(
        services,
        _document(
            pid,
            "11488-4",
            "Compte rendu de consultation",
            "2025-03-12",
            PDF,
            "application/pdf",
            author,
        ),
    )
    imaging = _create(
        services,
        _document(pid, "18748-4", "Radiographie du thorax", "2024-11-02", PNG, "image/png", None),
    )
    letter = _create(
        services, _document(pid, "99999-9", "Courrier", "2023-01-01", PDF, "application/pdf", None)
    )
    foreign = _create(
        services,
        _document(
            other, "11488-4", "Compte rendu d'un autre", "2025-01-01", PDF, "application/pdf", None
        ),
    )
    hidden = _create(
        services,
        _document(
            pid, "11502-2", "Résultat à annoncer", "2025-04-01", PDF, "application/pdf", None
        ),
    )
    for day, glucose, hba1c in (("2024-06-01", 1.02, 5.6), ("2025-03-10", 1.31, 6.8)):
        _create(services, _lab(pid, "2345-7", "Glycémie à jeun", glucose, "g/L", 0.7, 1.1, day))
        _create(services, _lab(pid, "4548-4", "Hémoglobine glyquée", hba1c, "%", 4.0, 6.0, day))
    _create(services, _lab(pid, "2823-3", "Potassium", 3.1, "mmol/L", 3.5, 5.0, "2025-03-10"))
    for day, weight, systolic, diastolic in (
        ("2024-01-15", 71.5, 128, 80),
        ("2024-09-15", 70.0, 142, 88),
        ("2025-03-12", 68.4, 135, 84),
    ):
        common = {
            "resourceType": "Observation",
            "status": "final",
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": f"{day}T09:00:00Z",
        }
        _create(
            services,
            {
                **common,
                "code": _concept("29463-7", "Poids"),
                "valueQuantity": {"value": weight, "unit": "kg"},
            },
        )
        _create(
            services,
            {
                **common,
                "code": _concept("85354-9", "Pression artérielle"),
                "component": [
                    {
                        "code": _concept("8480-6", "Systolique"),
                        "valueQuantity": {"value": systolic, "unit": "mmHg"},
                    },
                    {
                        "code": _concept("8462-4", "Diastolique"),
                        "valueQuantity": {"value": diastolic, "unit": "mmHg"},
                    },
                ],
            },
        )
    subject = {"patient": {"reference": f"Patient/{pid}"}}
    _create(
        services,
        {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": _concept("J07BB02", "Grippe saisonnière", "http://www.whocc.no/atc"),
            **subject,
            "occurrenceDateTime": "2024-10-20",
            "lotNumber": "AB123",
        },
    )
    _create(
        services,
        {
            "resourceType": "AllergyIntolerance",
            **subject,
            "code": _concept("91936005", "Allergie à la pénicilline", "http://snomed.info/sct"),
            "reaction": [
                {
                    "manifestation": [
                        _concept("271807003", "Éruption cutanée", "http://snomed.info/sct")
                    ]
                }
            ],
        },
    )
    _create(
        services,
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{pid}"},
            "medicationCodeableConcept": _concept(
                "C09AA05", "Ramipril 5 mg", "http://www.whocc.no/atc"
            ),
            "authoredOn": "2025-03-12",
            "dosageInstruction": [{"text": "1 comprimé le matin"}],
        },
    )
    _create(
        services,
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{pid}"},
            "clinicalStatus": _concept(
                "active", "Active", "http://terminology.hl7.org/CodeSystem/condition-clinical"
            ),
            "code": _concept("38341003", "Hypertension artérielle", "http://snomed.info/sct"),
            "onsetDateTime": "2024-09-15",
        },
    )
    with writing(services.engine) as conn:  # takes SQLite's write lock at BEGIN, waiting for it
        note_care(conn, pid, CARE_RPPS, "declared")
    pro = Principal(Kind.PROFESSIONAL, f"pro-{CARE_RPPS}", rpps=CARE_RPPS, profession="physician")
    services.controls.set_mask(
        RequestContext(pro, pro.subject),
        f"DocumentReference/{hidden}",
        "INVISIBLE_PATIENT",
        on=True,
    )
    return RecordWorld(pid, other, consult, imaging, letter, foreign, hidden)
