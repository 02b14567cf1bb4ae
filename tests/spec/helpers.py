"""Small builders for spec tests."""

from __future__ import annotations

from typing import Any

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def patient(family: str = "Dupont", given: str = "Marie", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1980-05-17",
        **extra,
    }


def observation(
    patient_id: str, code: str = "8302-2", value: float = 170.0, **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-03-05T10:15:00+01:00",
        "valueQuantity": {
            "value": value,
            "unit": "cm",
            "system": "http://unitsofmeasure.org",
            "code": "cm",
        },
        **extra,
    }
