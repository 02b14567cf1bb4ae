"""The FHIRPath subset used by search-parameter expressions."""

from __future__ import annotations

from typing import Any

import pytest

from carnet.fhir.fhirpath import Step, compile_expression, compile_getter, compile_path
from tests.unit.fhir.reference_fhirpath import evaluate

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
    "subject": {"reference": "Patient/p1"},
    "performer": [
        {"reference": "Practitioner/dr1"},
        {"reference": "https://fhir.example.org/r4/Patient/p1"},
        {"reference": "RelatedPerson/rp1"},
        {"display": "no reference"},
    ],
    "valueQuantity": {"value": 170, "unit": "cm"},
    "component": [
        {"code": {"text": "a"}, "valueQuantity": {"value": 1}},
        {"code": {"text": "b"}, "valueString": "x"},
    ],
}
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "name": [{"family": "Quintrandeau", "given": ["Éloïse", "Marie"]}, {"family": "Durand"}],
    "telecom": [
        {"system": "phone", "value": "0612345678"},
        {"system": "email", "value": "eloise@example.org"},
    ],
    "deceasedDateTime": "2020-01-01",
}


def _values(resource: dict[str, Any], expr: str) -> list[Any]:
    paths = compile_expression(expr, resource["resourceType"])
    assert paths is not None
    return [node for path in paths for node in compile_getter(path)(resource)]


def test_simple_path() -> None:
    assert compile_expression("Patient.name", "Patient") == [(Step(name="name"),)]
    assert compile_expression("Patient.name.family", "Patient") == [
        (Step(name="name"), Step(name="family"))
    ]


def test_union_keeps_members_of_this_type_only() -> None:
    expr = "Patient.name | Practitioner.name | RelatedPerson.name"
    assert compile_expression(expr, "Patient") == [(Step(name="name"),)]
    assert compile_expression(expr, "Practitioner") == [(Step(name="name"),)]
    assert compile_expression(expr, "Observation") == []


def test_union_of_several_paths_of_one_type() -> None:
    paths = compile_expression("Patient.name.family | Patient.name.given", "Patient")
    assert paths == [
        (Step(name="name"), Step(name="family")),
        (Step(name="name"), Step(name="given")),
    ]
    assert _values(PATIENT, "Patient.name.family | Patient.name.given") == [
        "Quintrandeau",
        "Durand",
        "Éloïse",
        "Marie",
    ]


def test_resource_and_domainresource_heads_apply_to_every_type() -> None:
    assert compile_expression("Resource.id", "Observation") == [(Step(name="id"),)]
    assert compile_expression("DomainResource.text", "Patient") == [(Step(name="text"),)]


@pytest.mark.parametrize(
    "expr",
    [
        "(Observation.value as Quantity)",
        "Observation.value as Quantity",
        "Observation.value.as(Quantity)",
        "Observation.value.ofType(Quantity)",
    ],
)
def test_casts(expr: str) -> None:
    assert compile_expression(expr, "Observation") == [(Step(name="valueQuantity"),)]
    assert _values(OBSERVATION, expr) == [{"value": 170, "unit": "cm"}]


def test_cast_union_and_lowercase_type() -> None:
    expr = "(Observation.value as Quantity) | (Observation.value as SampledData)"
    assert compile_expression(expr, "Observation") == [
        (Step(name="valueQuantity"),),
        (Step(name="valueSampledData"),),
    ]
    assert compile_expression("(Patient.deceased as dateTime)", "Patient") == [
        (Step(name="deceasedDateTime"),)
    ]
    assert _values(PATIENT, "(Patient.deceased as dateTime)") == ["2020-01-01"]


def test_cast_of_nested_element() -> None:
    expr = "Observation.component.value as Quantity"
    assert compile_expression(expr, "Observation") == [
        (Step(name="component"), Step(name="valueQuantity"))
    ]
    assert _values(OBSERVATION, expr) == [{"value": 1}]


def test_cast_with_qualified_type_name() -> None:
    assert compile_path("Observation.value.as(FHIR.Quantity)", "Observation") == (
        Step(name="valueQuantity"),
    )


def test_where_resolve_is() -> None:
    expr = "Observation.performer.where(resolve() is Patient)"
    assert compile_expression(expr, "Observation") == [
        (Step(name="performer"), Step(resolve_is="Patient"))
    ]
    # Relative and absolute references to a Patient; not RelatedPerson/..., not display-only.
    assert _values(OBSERVATION, expr) == [{"reference": "https://fhir.example.org/r4/Patient/p1"}]
    subject = _values(OBSERVATION, "Observation.subject.where(resolve() is Patient)")
    assert subject == [{"reference": "Patient/p1"}]
    assert _values(OBSERVATION, "Observation.subject.where(resolve() is Group)") == []


def test_where_equals() -> None:
    expr = "Patient.telecom.where(system='email')"
    assert compile_expression(expr, "Patient") == [
        (Step(name="telecom"), Step(where_field="system", where_value="email"))
    ]
    assert _values(PATIENT, expr) == [{"system": "email", "value": "eloise@example.org"}]


def test_pipe_inside_quotes_is_not_a_union() -> None:
    paths = compile_expression("Patient.telecom.where(system='a|b')", "Patient")
    assert paths == [(Step(name="telecom"), Step(where_field="system", where_value="a|b"))]


@pytest.mark.parametrize(
    "expr",
    [
        "Patient.name.exists()",
        "Patient.name.first()",
        "Patient.extension('http://example.org/x')",
        "Patient.name[0]",
        "Patient.name.where(use='official' and period.exists())",
        "Patient.name.family + Patient.name.given",
        "Patient.name | Patient.link.other.resolve()",
    ],
)
def test_unsupported_compiles_to_none(expr: str) -> None:
    assert compile_expression(expr, "Patient") is None


def test_unsupported_member_for_other_type_does_not_matter() -> None:
    expr = "Patient.name.exists() | Observation.code"
    assert compile_expression(expr, "Observation") == [(Step(name="code"),)]


def test_paths_flatten_lists_and_stop_on_missing() -> None:
    assert _values(OBSERVATION, "Observation.code.coding.code") == ["8302-2"]
    assert _values(OBSERVATION, "Observation.component.code.text") == ["a", "b"]
    assert _values(OBSERVATION, "Observation.note.text") == []
    assert _values(OBSERVATION, "Observation.status") == ["final"]


def test_paths_through_a_primitive_reach_nothing() -> None:
    assert _values(OBSERVATION, "Observation.status.text") == []
    assert _values(OBSERVATION, "Observation.status.where(resolve() is Patient)") == []


@pytest.mark.parametrize(
    ("resource", "expr"),
    [
        (OBSERVATION, "Observation.code.coding.code"),
        (OBSERVATION, "Observation.component.code.text"),
        (OBSERVATION, "Observation.component.value"),  # choice element
        (OBSERVATION, "Observation.note.text"),
        (OBSERVATION, "Observation.status"),
        (OBSERVATION, "Observation.status.text"),
        (OBSERVATION, "Observation.performer.where(resolve() is Patient)"),
        (OBSERVATION, "Observation.status.where(resolve() is Patient)"),
        (OBSERVATION, "Observation.value as Quantity"),
        (OBSERVATION, "(Observation.component.value as Quantity)"),
        (PATIENT, "Patient.name.given | Patient.name.family"),
        (PATIENT, "Patient.telecom.where(system='email')"),
        (PATIENT, "Patient.deceased"),
        (PATIENT, "Patient.address.city"),
    ],
)
def test_compiled_getter_gives_what_the_reference_interpreter_gives(
    resource: dict[str, Any], expr: str
) -> None:
    choices = frozenset({"Observation.value", "Observation.component.value", "Patient.deceased"})
    paths = compile_expression(expr, resource["resourceType"], choices)
    assert paths
    for path in paths:
        assert list(compile_getter(path)(resource)) == list(evaluate(resource, path))
    assert list(compile_getter(())(resource)) == [resource]  # a composite's component on its node
