"""What an update of a Patient may change of the identity it already has (the Patient write
hook, :meth:`IdentityService.on_patient_write`): its details, not the person it is."""

from __future__ import annotations

import logging

from carnet.fhir.errors import conflict
from carnet.fhir.repository import StoredResource
from carnet.identity.decisions import StoredIdentity, patient_identity, vetoed
from carnet.identity.ins import InvalidTraits
from carnet.identity.matching import MatchModel

log = logging.getLogger("carnet.identity")


def refuse_another_person(
    model: MatchModel, current: StoredIdentity, stored: StoredResource
) -> None:
    """Refuse (409) an update giving a Patient that has an identity the strict traits of
    someone else: traits its identity would never be linked to (a strict trait at its "else"
    level). Two sources' files using the same Patient id, or a wrong record picked at the desk,
    would otherwise turn one person's record into another's without a vigilance item. A
    correction (a typo, a later first name, a usage name) still goes through."""
    if stored.body is None:
        return
    try:
        inp = patient_identity(stored.body)
    except InvalidTraits:
        return  # no strict traits to compare: nothing is matched on this version
    if vetoed(model.score(inp.record(), current.record)):
        log.info(
            "Patient %s update refused: its traits name another person than identity %s",
            stored.res_id,
            current.id,
        )
        raise conflict(
            "this update gives the Patient the strict traits of another person than its "
            "identity; an identity is corrected through identity vigilance"
        )
