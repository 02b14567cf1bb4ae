"""Provisioning from the insured-person register: a pending space (and its Patient, unless known
by INS) for each person of a register file, the representatives the register names linked, an
objection the register reports applied, and the first notifications queued.

RecordService offers it (``RecordService.provision``) and lends it the one step it shares with a
closure: closing a space inside the caller's session (``close_in``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from carnet.caller import RequestContext
from carnet.crypto.blind_index import BlindIndexer
from carnet.db.instants import stamp
from carnet.fhir.errors import bad_request, conflict
from carnet.fhir.service import FhirService, FhirSession
from carnet.identity.decisions import another_person, patient_identity
from carnet.identity.ins import Ins, InvalidTraits, traits_from_patient
from carnet.record import notifications as templates
from carnet.record.dates import majority, paris_midnight
from carnet.record.models import CLOSED, OPEN, PENDING, REFUSED, SHREDDED, record_space
from carnet.record.outbox import notify
from carnet.record.register import InsuredPerson, ins_for
from carnet.record.representatives import Representatives

log = logging.getLogger("carnet.record")

CloseIn = Callable[[FhirSession, str, str, str, str, datetime], str]
"""Close a space inside a session: (session, patient, state, reason, action, moment)."""


@dataclass
class ProvisionReport:
    """What a provisioning run did; ``patients`` maps a file row to its Patient id."""

    created: int = 0
    known: int = 0
    objected: int = 0
    declined: int = 0  # already refused, closed or shredded: not provisioned again
    representatives: int = 0
    notifications: int = 0
    patients: dict[int, str] = field(default_factory=dict)


def _someone_else(body: dict[str, Any] | None, person: InsuredPerson) -> bool:
    """Whether a Patient found by the person's INS is someone else: the identity index's own
    decision (``another_person``, the one a Patient's update is held to), asked with the
    register's traits and usage name, so provisioning never judges a Patient otherwise than the
    index does; one without traits is no proof."""
    if body is None:
        return False
    return another_person(body, patient_identity(person.patient()).record())


def _contradicts(body: dict[str, Any] | None, ins: Ins) -> bool:
    """Whether a Patient found by an INS has the sex, birth year or month that INS does not
    encode (the rule every row of the register file is held to); one without traits is no proof."""
    if body is None:
        return False
    try:
        return not ins.agrees_with(traits_from_patient(body))
    except InvalidTraits:
        return False


class Provisioning:
    """Provisions spaces from the insured-person register, one file in one transaction."""

    def __init__(
        self,
        fhir: FhirService,
        blind: BlindIndexer,
        representatives: Representatives,
        close_in: CloseIn,
        *,
        objection_window: timedelta,
    ) -> None:
        self.fhir = fhir
        self.blind = blind
        self.representatives = representatives
        self.close_in = close_in
        self.objection_window = objection_window

    def ins_hash(self, ins: Ins) -> str:
        """Keyed blind hash of a matricule INS (remembers an objection without the number)."""
        return self.blind.digest("record-ins", ins.value)

    def provision(
        self,
        people: list[InsuredPerson],
        *,
        ctx: RequestContext,
        now: datetime | None = None,
    ) -> ProvisionReport:
        """Create a pending space (and its Patient, unless known by INS) for each person, link the
        representatives the register names, and queue their notifications; all in one
        transaction, so a failure changes nothing. Re-provisioning the same file changes nothing.
        People who objected are skipped; so are people whose space was refused or closed.
        """
        moment = now or datetime.now(UTC)
        report = ProvisionReport()
        with self.fhir.session(ctx, "record-provision", "Patient", None) as session:
            unit = session.unit
            by_nir: dict[str, str] = {}  # every Patient of the file
            active: dict[str, str] = {}  # those whose space is pending or open
            fresh: list[str] = []
            for person in people:
                if person.objected:
                    report.objected += 1
                    self._register_objection(session, person, moment)
                    continue
                pid, state = self._provision_one(session, person, moment, report)
                by_nir[person.ins.value] = pid
                report.patients[person.row] = pid
                if state == "created":
                    fresh.append(pid)
                if state != "declined":
                    active[person.ins.value] = pid
            for person in people:
                child = active.get(person.ins.value)
                for link in person.representatives if child else ():
                    assert child is not None
                    rep_pid = by_nir.get(link.nir) or self._known_patient(
                        session, link.nir, person.row
                    )
                    if rep_pid is None:
                        raise bad_request(
                            f"row {person.row}: the {link.kind} named by the register is neither "
                            "in the file nor known; nothing was provisioned"
                        )
                    until = majority(person.traits.birth_date) if link.kind == "parent" else None
                    if link.until is not None:
                        until = paris_midnight(link.until)
                    if until is not None and until <= moment:
                        continue  # already of age, or the guardianship ended
                    if self.representatives.link(
                        session, child, rep_pid, link.kind, until, "register", moment
                    ):
                        report.representatives += 1
            for pid in fresh:
                report.notifications += notify(unit.conn, pid, templates.PROVISIONED, moment)
        log.info(
            "provisioned %d space(s), %d known, %d objected, %d declined",
            report.created,
            report.known,
            report.objected,
            report.declined,
        )
        return report

    def _provision_one(
        self,
        session: FhirSession,
        person: InsuredPerson,
        moment: datetime,
        report: ProvisionReport,
    ) -> tuple[str, str]:
        """The person's Patient id and what happened: created, known or declined."""
        unit = session.unit
        digest = self.ins_hash(person.ins)
        row = unit.conn.execute(
            select(record_space.c.patient_id, record_space.c.state).where(
                record_space.c.ins_hash == digest
            )
        ).first()
        if row is not None:
            if row.state in (REFUSED, CLOSED, SHREDDED):
                report.declined += 1
                return str(row.patient_id), "declined"
            report.known += 1
            return str(row.patient_id), "known"
        query = f"identifier={person.ins.system}|{person.ins.value}"
        written = session.create("Patient", person.patient(), query)
        pid = written.stored.res_id
        if not written.created and _someone_else(written.stored.body, person):
            # The INS was written on another person's Patient (a typo at a desk): reusing it
            # would make her record his space. Identity vigilance decides, not provisioning.
            raise conflict(
                f"row {person.row}: a Patient already carries this INS with the strict traits of "
                "another person; resolve it in identity vigilance; nothing was provisioned"
            )
        existing = unit.conn.execute(
            select(record_space.c.state).where(record_space.c.patient_id == pid)
        ).scalar_one_or_none()
        if existing is not None:  # a space opened on request, before the register knew the INS
            unit.conn.execute(
                update(record_space)
                .where(record_space.c.patient_id == pid)
                .values(ins_hash=digest, updated_at=stamp(moment))
            )
            report.known += 1
            return pid, "declined" if existing in (REFUSED, CLOSED, SHREDDED) else "known"
        session.check("record-provision", "Patient", pid)
        unit.conn.execute(
            insert(record_space).values(
                patient_id=pid,
                ins_hash=digest,
                state=PENDING,
                source="register",
                provisioned_at=stamp(moment),
                objection_deadline=stamp(moment + self.objection_window),
                updated_at=stamp(moment),
            )
        )
        report.created += 1
        return pid, "created"

    def _known_patient(self, session: FhirSession, nir: str, row_number: int) -> str | None:
        unit = session.unit
        ins = ins_for(nir)
        row = unit.conn.execute(
            select(record_space.c.patient_id).where(record_space.c.ins_hash == self.ins_hash(ins))
        ).first()
        if row is not None:
            return str(row.patient_id)
        # whoever provisions, the register's person is looked for among every Patient
        query = f"identifier={ins.system}|{ins.value}"
        found = session.conditional_match("Patient", query, among_all=True)
        if found is None:
            return None
        if _contradicts(found.body, ins):
            # The NIR was typed on another person's Patient: making her the representative
            # would open the represented person's record to her.
            raise conflict(
                f"row {row_number}: the Patient carrying the representative's INS has a sex or "
                "birth date that INS does not encode; resolve it in identity vigilance; nothing "
                "was provisioned"
            )
        return found.res_id

    def _register_objection(
        self, session: FhirSession, person: InsuredPerson, moment: datetime
    ) -> None:
        """The register reports an objection: a space already pending or open is refused or
        closed; otherwise nothing is created."""
        unit = session.unit
        row = unit.conn.execute(
            select(record_space.c.patient_id, record_space.c.state).where(
                record_space.c.ins_hash == self.ins_hash(person.ins)
            )
        ).first()
        if row is not None and row.state in (PENDING, OPEN):
            pid = str(row.patient_id)
            self.close_in(session, pid, row.state, "objection", "record-object", moment)
