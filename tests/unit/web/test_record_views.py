"""The record pages' pure parts: a document's class from its type, flags in words, the chart."""

from __future__ import annotations

from datetime import date

from carnet.web.record.chart import Point, Series, draw
from carnet.web.record.clinical import latest_results, result_row
from carnet.web.record.documents import CLASS_SYSTEM, OTHER, class_of


def _doc(type_code: str, category: str | None = None) -> dict[str, object]:
    doc: dict[str, object] = {
        "type": {"coding": [{"system": "http://loinc.org", "code": type_code}]}
    }
    if category:
        doc["category"] = [{"coding": [{"system": CLASS_SYSTEM, "code": category}]}]
    return doc


def test_a_documents_class_is_derived_from_its_type_code() -> None:
    assert class_of(_doc("11488-4")) == "10"  # consultation report: Comptes rendus
    assert class_of(_doc("18748-4")) == "31"  # imaging report: Imagerie médicale
    assert class_of(_doc("57833-6")) == "42"  # prescription


def test_a_class_carried_by_the_document_wins_and_unknown_types_go_to_others() -> None:
    assert class_of(_doc("11488-4", category="11")) == "11"
    assert class_of(_doc("99999-9")) == OTHER
    assert class_of({}) == OTHER


def test_a_result_outside_its_range_is_flagged_in_words_even_without_interpretation() -> None:
    obs = {
        "code": {"text": "Potassium"},
        "valueQuantity": {"value": 5.6, "unit": "mmol/L"},
        "referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.0}}],
        "effectiveDateTime": "2025-01-01",
    }
    assert result_row(obs).flag_word == "élevé"
    obs["valueQuantity"] = {"value": 3.0}
    assert result_row(obs).flag_word == "bas"
    obs["interpretation"] = [{"coding": [{"code": "LL"}]}]
    assert result_row(obs).flag_word == "très bas"


def test_only_the_latest_value_of_each_test_is_kept() -> None:
    older = {
        "code": {"coding": [{"code": "2345-7"}], "text": "Glycémie"},
        "valueQuantity": {"value": 1.0},
        "effectiveDateTime": "2024-01-01",
    }
    newer = {**older, "valueQuantity": {"value": 1.3}, "effectiveDateTime": "2025-01-01"}
    wrong = {**older, "status": "entered-in-error", "effectiveDateTime": "2026-01-01"}
    assert [r.value for r in latest_results([older, newer, wrong])] == [1.3]


def test_the_chart_is_labelled_escaped_and_draws_the_band() -> None:
    series = [Series("Poids", [Point(date(2024, 1, 1), 70), Point(date(2025, 1, 1), 68.5)])]
    svg = str(draw(series, title="Poids <kg>", description="2 mesures", band=(60, 80)))
    assert 'role="img" aria-labelledby="chart-title chart-desc"' in svg
    assert '<title id="chart-title">Poids &lt;kg&gt;</title>' in svg
    assert 'class="band"' in svg and svg.count('<circle class="point"') == 2
    assert str(draw([], title="t", description="d")) == ""


def test_an_item_the_patient_declared_is_marked_in_the_synthesis_and_the_documents() -> None:
    from carnet.web.profile.declared import declared
    from carnet.web.record import clinical
    from carnet.web.record.documents import rows

    told = declared({"resourceType": "AllergyIntolerance", "code": {"text": "Latex"}})
    found = {"resourceType": "AllergyIntolerance", "code": {"text": "Iode"}}
    marks = {i.label: i.declared for i in clinical.allergies([told, found])}
    assert marks == {"Latex": True, "Iode": False}
    statement = declared(
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {"text": "Ventoline"},
            "dosage": [{"text": "2 bouffées"}],
        }
    )
    (treatment,) = clinical.treatments([statement])
    assert (treatment.label, treatment.detail, treatment.declared) == (
        "Ventoline",
        "2 bouffées",
        True,
    )
    document = declared({"resourceType": "DocumentReference", "id": "d1", "status": "current"})
    (row,) = rows({"entry": [{"resource": document}]})
    assert row.declared
