"""A pair dismissed from the vigilance queue is remembered (SQLite and PostgreSQL): the same two
identities do not meet again in the queue on the next matching, nor in the next batch dedupe."""

from __future__ import annotations

from dataclasses import replace

import pytest

from carnet.app import Services
from carnet.identity.engines import SparkEngine
from carnet.identity.ins import Traits
from carnet.identity.service import IdentityInput, Outcome
from tests.support.caller import AS_LOCAL_OPERATOR

JEAN = Traits.create("Dupont", ["Jean", "Paul"], "1985-07-04", "M", "75056")
# Plausibly Jean (a first-name typo and no birth place), but the officer knows another man.
DOUBTFUL = replace(JEAN, birth_place=None, given_names=("JAEN",))


def _patient(services: Services) -> str:
    body = {"resourceType": "Patient", "name": [{"family": "X"}], "gender": "male"}
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


@pytest.mark.slow  # Spark (the session-wide JVM, which the engine opened below reuses)
def test_dismissed_pair_does_not_come_back(services: Services, spark: SparkEngine) -> None:
    mpi = services.identity
    jean = mpi.resolve(IdentityInput(JEAN, patient_id=_patient(services)), ctx=AS_LOCAL_OPERATOR)
    other_pid = _patient(services)
    other = mpi.resolve(IdentityInput(DOUBTFUL, patient_id=other_pid), ctx=AS_LOCAL_OPERATOR)
    assert other.outcome is Outcome.REVIEW and other.item_id is not None
    pair = {jean.identity_id, other.identity_id}
    assert [{p.a, p.b} for p in mpi.batch.dedupe()] == [pair]  # the batch run sees it too
    assert mpi.batch.dedupe(engine="spark", spark_master="local[1]") == mpi.batch.dedupe()
    mpi.vigilance.dismiss(other.item_id, actor="officer", ctx=AS_LOCAL_OPERATOR)
    # The same man's record again: his own identity, not a new review against Jean.
    again = mpi.resolve(IdentityInput(DOUBTFUL), ctx=AS_LOCAL_OPERATOR)
    assert again.outcome is Outcome.LINK, again.reason
    assert again.patient_id == other_pid
    assert mpi.vigilance.queue() == []
    assert mpi.batch.dedupe() == []
    # Jean himself still links to Jean; a third, undecided look-alike still goes to review.
    assert mpi.resolve(IdentityInput(JEAN), ctx=AS_LOCAL_OPERATOR).identity_id == jean.identity_id
    third = mpi.resolve(
        IdentityInput(replace(DOUBTFUL, given_names=("JEANN",))), ctx=AS_LOCAL_OPERATOR
    )
    assert third.outcome is Outcome.REVIEW
