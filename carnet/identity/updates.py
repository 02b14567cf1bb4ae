"""What a write may change of an identity the index already holds, composed into
``IdentityService`` as ``updates``: its details, not the person it is, and its INS once, if no
other identified person carries it.

Two writes come here: an update of a Patient that has an identity (the Patient write hook,
:meth:`IdentityService.on_patient_write`) and a link of an incoming identity carrying an INS to
an identity known without one (:meth:`IdentityService.resolve_in`). Both may only complete the
identity; turning it into another person, or giving it another person's INS, is identity
vigilance's (a merge), never a write's.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from carnet.fhir.dates import utc_now
from carnet.fhir.errors import conflict
from carnet.fhir.repository import StoredResource
from carnet.identity.decisions import StoredIdentity, another_person
from carnet.identity.ins import Ins, ins_from_patient
from carnet.identity.models import identity, ins_digest
from carnet.identity.vigilance import OWNER

if TYPE_CHECKING:
    from carnet.identity.service import IdentityService

log = logging.getLogger("carnet.identity")


def refuse_another_person(current: StoredIdentity, stored: StoredResource) -> None:
    """Refuse (409) an update giving a Patient that has an identity the strict traits of
    someone else: traits its identity would never be linked to (a strict trait at its "else"
    level). Two sources' files using the same Patient id, or a wrong record picked at the desk,
    would otherwise turn one person's record into another's without a vigilance item. A
    correction (a typo, a later first name, a usage name) still goes through. The decision is
    the index's one (:func:`another_person`), the register's provisioning asks it too."""
    if stored.body is None:
        return
    # A Patient without strict traits is no proof: nothing is matched on that version.
    if another_person(stored.body, current.record):
        log.info(
            "Patient %s update refused: its traits name another person than identity %s",
            stored.res_id,
            current.id,
        )
        raise conflict(
            "this update gives the Patient the strict traits of another person than its "
            "identity; an identity is corrected through identity vigilance"
        )


class PatientUpdates:
    """The writes that complete an identity of ``index``: a Patient's update, an INS adopted."""

    def __init__(self, index: IdentityService) -> None:
        self.index = index

    def on_update(self, conn: Connection, known: Any, stored: StoredResource) -> None:
        """A Patient whose identity is ``known`` (its row) was written: refuse another person's
        traits, then give the identity the INS the Patient carries if it had none."""
        (current,) = self.index.load(conn, [known])
        refuse_another_person(current, stored)
        found = None if stored.body is None else ins_from_patient(stored.body)
        if found is not None:
            self.adopt_ins(conn, known.id, found)

    def adopt_ins(self, conn: Connection, ident_id: str, ins: Ins) -> None:
        """Give an identity known without an INS the one a linked record or its Patient carries, so
        that a homonym with another INS is never taken for it. An identity's INS never changes."""
        index = self.index
        row = conn.execute(select(identity).where(identity.c.id == ident_id)).first()
        if row is None or row.ins_hash is not None:
            return
        digest = ins_digest(index.blind, ins)
        holders = conn.execute(
            select(identity).where(
                identity.c.ins_hash == digest,
                identity.c.id != ident_id,
                identity.c.state != "merged",
            )
        ).all()
        # Another identified person (traits, not only the INS of documents waiting for the
        # officer) is that INS's: two identities carrying one INS would let a document for her
        # go to either (a homonym's card picked at the desk).
        person = next((h for h in index.load(conn, list(holders)) if h.record["birth_name"]), None)
        if person is not None:
            log.info("identity %s not given the INS identity %s carries", ident_id, person.id)
            raise conflict(
                "this INS is another identity's: a Patient is given it through identity "
                "vigilance (a merge), not by an update"
            )
        keys = index.data_keys
        data = json.loads(keys.decrypt(conn, OWNER, row.traits, ident_id.encode()))
        data["i"] = [ins.system, ins.value]
        blob = keys.encrypt(conn, OWNER, json.dumps(data).encode(), ident_id.encode())
        conn.execute(
            update(identity)
            .where(identity.c.id == ident_id)
            .values(ins_hash=digest, traits=blob, updated_at=utc_now())
        )
        log.info("identity %s now carries its INS", ident_id)
