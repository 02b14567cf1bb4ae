"""The mask preview is the policy's answer (who reads an item now, who still would if masked:
the médecin traitant), refused for another's item; the research opt-out is kept as it stood at
each instant, for the hub's extractions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from carnet.app import Services
from carnet.caller import RequestContext
from carnet.db.instants import utc_now
from carnet.fhir.errors import FhirError
from carnet.policy.control_events import ControlError
from tests.unit.record.controls_setup import GP, NURSE, Record, small_record


def _profession(services: Services) -> Callable[[str], str | None]:
    def profession_of(rpps: str) -> str | None:
        account = services.accounts.find_by_rpps(rpps)
        return account.profession if account else None

    return profession_of


@pytest.fixture
def record(services: Services) -> Record:
    return small_record(services)


def test_mask_preview_names_who_still_sees_the_item(services: Services, record: Record) -> None:
    controls, ref = services.controls, f"DocumentReference/{record.doc}"
    services.accounts.create_professional("nurse@exemple.fr", None, NURSE, "nurse")
    controls.declare_care(record.as_patient, None, NURSE, medecin_traitant=False)
    seen = controls.audience(record.as_patient, ref, _profession(services))
    assert {v.rpps for v in seen.now} == {GP, NURSE}
    assert seen.if_masked == []  # masked: no one with plain care reads it
    controls.declare_care(record.as_patient, None, GP, medecin_traitant=True)
    seen = controls.audience(record.as_patient, ref, _profession(services))
    assert [(v.rpps, v.rule) for v in seen.if_masked] == [(GP, "medecin-traitant-read")]
    controls.set_mask(record.as_patient, ref, "MASQUE_PS", on=True)
    seen = controls.audience(record.as_patient, ref, _profession(services))
    assert [v.rpps for v in seen.now] == [GP]  # the same answer the PDP gives a read
    with pytest.raises(FhirError) as hidden:  # the nurse: masked, answered as missing
        services.fhir.read("DocumentReference", record.doc, ctx=_nurse(services))
    assert hidden.value.status == 404


def _nurse(services: Services) -> RequestContext:
    account = services.accounts.find_by_rpps(NURSE)
    assert account is not None
    principal = services.accounts.principal_for(account.account_id)
    return RequestContext(principal=principal, actor=principal.subject)


def test_mask_preview_of_another_persons_item_answers_as_missing(
    services: Services, record: Record
) -> None:
    with pytest.raises(ControlError) as refused:
        services.controls.audience(
            record.as_other, f"DocumentReference/{record.doc}", _profession(services)
        )
    assert refused.value.status == 404


@pytest.mark.both_backends  # the instants are compared as text in SQL
def test_research_optout_is_honoured_as_it_stood_at_each_instant(
    services: Services, record: Record
) -> None:
    controls, optout = services.controls, services.research_optout
    before = utc_now()
    assert optout.opted_out(record.patient) is False
    controls.set_preferences(record.as_patient, None, research_optout=True)
    assert optout.opted_out(record.patient) is True
    assert optout.opted_out(record.patient, before - timedelta(seconds=1)) is False
    middle = utc_now()
    controls.set_preferences(record.as_patient, None, research_optout=False)
    assert optout.opted_out(record.patient) is False
    assert optout.opted_out(record.patient, middle) is True
    controls.set_preferences(record.as_patient, None, emergency_opposition=True)
    assert optout.opted_out(record.patient, middle) is True  # another preference: no change
