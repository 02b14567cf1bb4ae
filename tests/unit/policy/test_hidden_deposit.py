"""A professional's deposit "invisible to the patient" (ControlsService.hide_from_patient_in): the
item and its flag are one transaction, so the item is never stored without its flag."""

from __future__ import annotations

from typing import Any

import pytest

from carnet.app import Services
from carnet.caller import Kind, Principal, RequestContext
from carnet.policy.control_events import ControlError
from tests.support.caller import AS_LOCAL_OPERATOR

# Both backends: the flag is written in the FHIR unit's own transaction.
pytestmark = pytest.mark.both_backends

GP = "10000000011"
AS_GP = RequestContext(
    Principal(Kind.PROFESSIONAL, "pro-gp", rpps=GP, profession="physician"), "gp"
)


def _setup(services: Services) -> tuple[str, RequestContext]:
    patient = services.fhir.create(
        "Patient", {"resourceType": "Patient", "birthDate": "1970-01-01"}, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    person = RequestContext(Principal(Kind.PERSON, "acct-p", patient_id=patient), "p")
    services.controls.declare_care(person, None, GP, medecin_traitant=False)
    return patient, person


def _result(patient: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"text": "Biopsie"},
        "subject": {"reference": f"Patient/{patient}"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "QmlvcHNpZQ=="}}],
    }


def _seen(services: Services, patient: str, ctx: RequestContext) -> int:
    found = services.fhir.search(
        "http://x/fhir", "DocumentReference", [("patient", patient)], ctx=ctx
    )
    return len(found.get("entry", []))


def test_a_deposit_hidden_from_the_patient_is_stored_with_its_flag(services: Services) -> None:
    patient, person = _setup(services)
    with services.fhir.session(AS_GP, "create", "DocumentReference", None) as session:
        created = session.create("DocumentReference", _result(patient))
        services.controls.hide_from_patient_in(session, created.stored)
    assert _seen(services, patient, AS_GP) == 1
    assert _seen(services, patient, person) == 0
    flagged = services.controls.history_hidden(person.principal, patient)
    assert flagged == frozenset({f"DocumentReference/{created.stored.res_id}"})


def test_a_deposit_that_fails_after_its_flag_leaves_neither_item_nor_flag(
    services: Services,
) -> None:
    patient, person = _setup(services)
    with (
        pytest.raises(RuntimeError),
        services.fhir.session(AS_GP, "create", "DocumentReference", None) as session,
    ):
        created = session.create("DocumentReference", _result(patient))
        services.controls.hide_from_patient_in(session, created.stored)
        raise RuntimeError("the deposit's unit fails after the flag")
    assert _seen(services, patient, AS_LOCAL_OPERATOR) == 0
    assert services.controls.history_hidden(person.principal, patient) == frozenset()


def test_only_a_professional_hides_a_deposit_from_the_patient(services: Services) -> None:
    patient, person = _setup(services)
    with (
        pytest.raises(ControlError),
        services.fhir.session(person, "create", "DocumentReference", None) as session,
    ):
        created = session.create("DocumentReference", _result(patient))
        services.controls.hide_from_patient_in(session, created.stored)
