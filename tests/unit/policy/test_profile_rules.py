"""A person completes their own medical profile, and a representative the profile of the person
they represent: every kind of item the portal's profile writes (history, allergies, treatments,
family history, vaccinations, measurements, advance directives, organ donation, people to
contact, "my professionals") is allowed in their record, and in no one else's."""

from __future__ import annotations

from typing import Any

import pytest

from carnet.app import Services
from carnet.caller import Kind, Principal, RequestContext
from carnet.fhir.errors import FhirError
from tests.support.caller import AS_LOCAL_OPERATOR

# Both backends: who may write what is decided over stored records.
pytestmark = pytest.mark.both_backends


def _body(res_type: str, pid: str) -> dict[str, Any]:
    """One minimal valid body of each kind the profile writes, about ``Patient/{pid}``."""
    ref = {"reference": f"Patient/{pid}"}
    bodies: dict[str, dict[str, Any]] = {
        "Condition": {"code": {"text": "Asthme"}, "subject": ref},
        "AllergyIntolerance": {"code": {"text": "Pénicilline"}, "patient": ref},
        "MedicationStatement": {
            "status": "active",
            "medicationCodeableConcept": {"text": "Ventoline"},
            "subject": ref,
        },
        "FamilyMemberHistory": {
            "status": "completed",
            "patient": ref,
            "relationship": {"text": "Mère"},
        },
        "Immunization": {
            "status": "completed",
            "vaccineCode": {"text": "DTP"},
            "patient": ref,
            "occurrenceDateTime": "2020-01-01",
            "primarySource": False,
        },
        "Observation": {
            "status": "final",
            "code": {"text": "Poids"},
            "subject": ref,
            "valueQuantity": {"value": 70, "unit": "kg"},
        },
        "RelatedPerson": {"patient": ref, "name": [{"text": "Luc"}]},
        "CareTeam": {"status": "active", "subject": ref},
        "DocumentReference": {
            "status": "current",
            "type": {"text": "Directives anticipées"},
            "subject": ref,
            "content": [{"attachment": {"contentType": "text/plain", "title": "Directives"}}],
        },
    }
    return {"resourceType": res_type, **bodies[res_type]}


PROFILE_TYPES = (
    "AllergyIntolerance",
    "CareTeam",
    "Condition",
    "DocumentReference",
    "FamilyMemberHistory",
    "Immunization",
    "MedicationStatement",
    "Observation",
    "RelatedPerson",
)


def _patient(services: Services, born: str) -> str:
    body = {"resourceType": "Patient", "birthDate": born}
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _person(pid: str) -> RequestContext:
    principal = Principal(Kind.PERSON, f"acct-{pid[:8]}", patient_id=pid)
    return RequestContext(principal, principal.subject)


@pytest.fixture
def people(services: Services) -> tuple[str, str, str]:
    parent, child, stranger = (
        _patient(services, born) for born in ("1980-01-01", "2016-01-01", "1990-01-01")
    )
    services.record.representatives.add(child, parent, "parent", ctx=AS_LOCAL_OPERATOR)
    return parent, child, stranger


def test_profile_items_are_written_in_ones_own_or_a_represented_record_and_no_other(
    services: Services, people: tuple[str, str, str]
) -> None:
    """One store per backend for the three sides of the rule (a store costs more than the
    writes)."""
    parent, child, stranger = people
    for res_type in PROFILE_TYPES:  # every kind, in the person's own record
        made = services.fhir.create(res_type, _body(res_type, parent), ctx=_person(parent))
        services.fhir.delete(res_type, made.stored.res_id, ctx=_person(parent))
    for res_type in ("FamilyMemberHistory", "RelatedPerson", "CareTeam"):
        made = services.fhir.create(res_type, _body(res_type, child), ctx=_person(parent))
        assert made.stored.patient_id == child  # the represented child's record
        with pytest.raises(FhirError) as refused:  # never a stranger's
            services.fhir.create(res_type, _body(res_type, stranger), ctx=_person(parent))
        assert refused.value.status == 403
