"""Reads inside a unit of work: what ``current`` answers is the same whether the versions were
read ahead (``prefetch_current``, an import batch), written in the unit, or read one by one.
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from carnet.app import Services
from carnet.fhir.errors import FhirError
from tests.support.caller import AS_LOCAL_OPERATOR


def _patient(family: str) -> dict[str, object]:
    return {"resourceType": "Patient", "name": [{"family": family}]}


def test_prefetched_current_versions_match_single_reads(services: Services) -> None:
    fhir = services.fhir
    kept = fhir.create("Patient", _patient("Kept"), ctx=AS_LOCAL_OPERATOR).stored
    updated = fhir.update(
        "Patient", kept.res_id, {**_patient("Kept2"), "id": kept.res_id}, ctx=AS_LOCAL_OPERATOR
    ).stored
    gone = fhir.create("Patient", _patient("Gone"), ctx=AS_LOCAL_OPERATOR).stored
    fhir.delete("Patient", gone.res_id, ctx=AS_LOCAL_OPERATOR)
    keys = [("Patient", kept.res_id), ("Patient", gone.res_id), ("Patient", "never-used")]
    with fhir.repo.unit(write=False) as unit:
        one_by_one = [unit.current(*key) for key in keys]
    with fhir.repo.unit(write=False) as unit:
        unit.prefetch_current(keys)
        ahead = [unit.current(*key) for key in keys]
    assert ahead == one_by_one
    assert ahead[0] is not None and ahead[0].version == updated.version == 2
    assert ahead[0].body is not None and ahead[0].body["name"] == [{"family": "Kept2"}]
    assert ahead[1] is not None and ahead[1].deleted
    assert ahead[2] is None


def test_a_write_in_the_unit_replaces_what_was_read_ahead(services: Services) -> None:
    fhir = services.fhir
    stored = fhir.create("Patient", _patient("Before"), ctx=AS_LOCAL_OPERATOR).stored
    key = ("Patient", stored.res_id)
    with fhir.repo.unit() as unit:
        unit.prefetch_current([key])
        previous = unit.current(*key)
        body = {**_patient("After"), "id": stored.res_id}
        unit.write("Patient", stored.res_id, body, method="PUT", previous=previous)
        now = unit.current(*key)
        assert now is not None and now.version == 2
        assert now.body is not None and now.body["name"] == [{"family": "After"}]
    assert fhir.read("Patient", stored.res_id, ctx=AS_LOCAL_OPERATOR).version == 2


def test_an_erased_record_read_ahead_still_answers_gone(services: Services) -> None:
    fhir = services.fhir
    pid = fhir.create("Patient", _patient("Erased"), ctx=AS_LOCAL_OPERATOR).stored.res_id
    with fhir.repo.unit() as unit:
        unit.prefetch_current([("Patient", pid)])  # read before the erasure, in the same unit
        assert unit.destroy_patient_key(pid)
        with pytest.raises(FhirError) as raised:
            unit.current("Patient", pid)
        assert raised.value.status == 410
    with fhir.repo.unit(write=False) as unit:
        unit.prefetch_current([("Patient", pid)])
        with pytest.raises(FhirError) as raised:
            unit.current("Patient", pid)
        assert raised.value.status == 410
