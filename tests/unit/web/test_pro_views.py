"""What the workspace's record page reads from FHIR Bundles (carnet/web/pro/views.py): the patient
card (a qualified INS only for QUAL), the IPS sections, documents with their authors and
organisation, results with a flag in words."""

from __future__ import annotations

from typing import Any

from carnet.web.pro import views


def _patient(status: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"use": "official", "family": "LEFEBVRE", "given": ["CLAIRE", "ANNE"]}],
        "gender": "female",
        "birthDate": "1990-05-03",
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "290057505601201"}],
        "extension": [
            {
                "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
                "extension": [
                    {"url": "identityReliability", "valueCoding": {"code": status}},
                ],
            }
        ],
    }


def test_the_patient_card_shows_a_qualified_ins_only_for_a_qualified_identity() -> None:
    qualified = views.patient_card(_patient("QUAL"))
    assert qualified.name == "LEFEBVRE CLAIRE ANNE" and qualified.sex == "F"
    assert qualified.ins == "290057505601201" and qualified.qualified
    assert not views.patient_card(_patient("RECUP")).qualified


def test_the_synthesis_lists_each_section_with_its_items() -> None:
    summary = {
        "entry": [
            {
                "resource": {
                    "resourceType": "Composition",
                    "section": [
                        {
                            "title": "Problem list",
                            "code": {"coding": [{"code": "11450-4"}]},
                            "entry": [{"reference": "urn:x/Condition/c1"}],
                        },
                        {"title": "Allergies", "code": {"coding": [{"code": "48765-2"}]}},
                    ],
                }
            },
            {
                "fullUrl": "urn:x/Condition/c1",
                "resource": {
                    "resourceType": "Condition",
                    "id": "c1",
                    "code": {"text": "Diabète de type 2"},
                    "onsetDateTime": "2019-04-01",
                },
            },
        ]
    }
    problems, allergies = views.synthesis(summary)
    assert problems.title == "Problèmes de santé"
    assert problems.items == [views.SynthesisItem("Diabète de type 2", "", "2019-04-01")]
    assert allergies.title == "Allergies et intolérances" and allergies.items == []


def test_results_carry_their_range_and_a_flag_in_words() -> None:
    bundle = {
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "code": {"text": "Glycémie à jeun"},
                    "valueQuantity": {"value": 7.2, "unit": "mmol/L"},
                    "referenceRange": [{"low": {"value": 3.9}, "high": {"value": 5.5}}],
                    "interpretation": [{"coding": [{"code": "H"}]}],
                    "effectiveDateTime": "2025-01-10",
                }
            },
            {"resource": {"resourceType": "Observation", "code": {"text": "Sans valeur"}}},
        ]
    }
    [row] = views.results(bundle)
    assert (row.label, row.value, row.unit, row.low, row.high, row.flag) == (
        "Glycémie à jeun",
        7.2,
        "mmol/L",
        3.9,
        5.5,
        "élevé",
    )
    assert row.numeric


def test_the_synthesis_and_the_documents_mark_what_the_patient_declared() -> None:
    from carnet.web.profile.declared import declared

    told = declared({"resourceType": "AllergyIntolerance", "id": "a1", "code": {"text": "Latex"}})
    found = {"resourceType": "AllergyIntolerance", "id": "a2", "code": {"text": "Iode"}}
    summary = {
        "entry": [
            {
                "resource": {
                    "resourceType": "Composition",
                    "section": [
                        {
                            "code": {"coding": [{"code": "48765-2"}]},
                            "entry": [
                                {"reference": "AllergyIntolerance/a1"},
                                {"reference": "AllergyIntolerance/a2"},
                            ],
                        }
                    ],
                }
            },
            {"resource": told},
            {"resource": found},
        ]
    }
    (section,) = views.synthesis(summary)
    assert [(i.label, i.declared) for i in section.items] == [("Latex", True), ("Iode", False)]
    document = declared({"resourceType": "DocumentReference", "id": "d1", "status": "current"})
    (row,) = views.documents({"entry": [{"resource": document}]})
    assert row.declared
