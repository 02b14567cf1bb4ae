"""Legal representatives: who acts for whom (parent of a minor, guardian, curator), declared or
from the register, and the queries the policy decision point asks (``represented_patients_in``).

A service of its own: RecordService uses it (a space shows its representatives; provisioning
links those the register names; shredding ends them) and the PDP is given its query."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, or_, select, update

from carnet.caller import RequestContext
from carnet.db.engine import reading
from carnet.db.instants import stamp, utc_now
from carnet.fhir.errors import bad_request, conflict, not_found
from carnet.fhir.service import FhirService, FhirSession
from carnet.record import notifications as templates
from carnet.record.dates import majority
from carnet.record.models import record_representative
from carnet.record.outbox import active, queue
from carnet.record.register import KINDS


def represented_patients_in(
    conn: Connection, person_patient_id: str, *, now: datetime | None = None
) -> list[str]:
    """Patient ids ``person_patient_id`` currently represents, on an open connection: what the
    policy decision point asks inside the caller's transaction."""
    rep = record_representative.c
    rows = conn.execute(
        select(rep.patient_id)
        .where(rep.representative_patient_id == person_patient_id, active(now))
        .distinct()
        .order_by(rep.patient_id)
    ).all()
    return [r.patient_id for r in rows]


class Representatives:
    """Representations: declared, linked from the register, ended, and queried."""

    def __init__(self, fhir: FhirService, engine: Engine) -> None:
        self.fhir = fhir
        self.engine = engine  # the representations' own reads (no resource rows)

    def represented_patients(
        self, person_patient_id: str, *, now: datetime | None = None
    ) -> list[str]:
        """Patient ids ``person_patient_id`` currently represents (parent of a minor, guardian or
        curator whose term has not ended)."""
        with reading(self.engine) as conn:
            return self.represented_patients_in(conn, person_patient_id, now=now)

    def represented_patients_in(
        self, conn: Connection, person_patient_id: str, *, now: datetime | None = None
    ) -> list[str]:
        """:meth:`represented_patients` on an open connection (inside the caller's transaction)."""
        return represented_patients_in(conn, person_patient_id, now=now)

    def representatives_of(self, patient_id: str, *, now: datetime | None = None) -> list[str]:
        """Patient ids of the people who currently act for ``patient_id``."""
        with reading(self.engine) as conn:
            return self.representatives_of_in(conn, patient_id, now=now)

    def representatives_of_in(
        self, conn: Connection, patient_id: str, *, now: datetime | None = None
    ) -> list[str]:
        """:meth:`representatives_of` on an open connection."""
        rep = record_representative.c
        rows = conn.execute(
            select(rep.representative_patient_id)
            .where(rep.patient_id == patient_id, active(now))
            .distinct()
            .order_by(rep.representative_patient_id)
        ).all()
        return [r.representative_patient_id for r in rows]

    def current_of_in(
        self, conn: Connection, patient_id: str, *, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The representations of ``patient_id`` in force (who, kind, since, until), oldest first,
        as a space shows them."""
        rep = record_representative.c
        links = conn.execute(
            select(rep.representative_patient_id, rep.kind, rep.since, rep.until)
            .where(rep.patient_id == patient_id, active(now))
            .order_by(rep.since)
        ).all()
        return [
            {
                "patient": r.representative_patient_id,
                "kind": r.kind,
                "since": r.since,
                "until": r.until,
            }
            for r in links
        ]

    def add(
        self,
        patient_id: str,
        representative_patient_id: str,
        kind: str,
        *,
        until: datetime | None = None,
        ctx: RequestContext,
        now: datetime | None = None,
    ) -> bool:
        """Declare that ``representative_patient_id`` acts for ``patient_id`` (parent, guardian or
        curator). A parent's representation ends when the child turns 18 (from the Patient's
        birth date); a guardian's or curator's at ``until`` (None: until ended). False if that
        representation already exists."""
        moment = now or utc_now()
        if kind not in KINDS:
            raise bad_request(f"representative kind must be one of {', '.join(KINDS)}")
        if patient_id == representative_patient_id:
            raise bad_request("a person cannot represent themselves")
        with self.fhir.session(ctx, "record-representative", "Patient", patient_id) as session:
            bodies = {}
            for pid in (patient_id, representative_patient_id):
                stored = session.current("Patient", pid)
                if stored is None or stored.deleted or stored.body is None:
                    raise not_found(f"Patient/{pid} is not known")
                bodies[pid] = stored.body
            if kind == "parent":
                birth = bodies[patient_id].get("birthDate")
                if not isinstance(birth, str) or len(birth) != 10:
                    raise bad_request(f"Patient/{patient_id} has no full birth date")
                until = majority(date.fromisoformat(birth))
                if until <= moment:
                    raise conflict(f"Patient/{patient_id} is of age: use guardian or curator")
            return self.link(
                session, patient_id, representative_patient_id, kind, until, "declared", moment
            )

    def end(
        self,
        patient_id: str,
        representative_patient_id: str,
        *,
        ctx: RequestContext,
        now: datetime | None = None,
    ) -> int:
        """End every current representation of ``patient_id`` by ``representative_patient_id``."""
        moment = now or utc_now()
        rep = record_representative.c
        with self.fhir.session(ctx, "record-representative", "Patient", patient_id) as session:
            unit = session.unit
            session.check("record-representative", "Patient", patient_id)
            ended = unit.conn.execute(
                update(record_representative)
                .where(
                    rep.patient_id == patient_id,
                    rep.representative_patient_id == representative_patient_id,
                    active(moment),
                )
                .values(ended_at=stamp(moment))
            ).rowcount
        return int(ended)

    def end_all_in(self, session: FhirSession, patient_id: str, moment: datetime) -> None:
        """End every representation of ``patient_id`` and by ``patient_id`` (their record is being
        shredded), inside the caller's session."""
        unit = session.unit
        rep = record_representative.c
        unit.conn.execute(
            update(record_representative)
            .where(
                or_(rep.patient_id == patient_id, rep.representative_patient_id == patient_id),
                rep.ended_at.is_(None),
            )
            .values(ended_at=stamp(moment))
        )

    def link(
        self,
        session: FhirSession,
        patient_id: str,
        rep_pid: str,
        kind: str,
        until: datetime | None,
        source: str,
        moment: datetime,
    ) -> bool:
        """Link ``rep_pid`` as ``kind`` of ``patient_id`` inside the caller's session (checked,
        and the people notified); False if that representation is already in force."""
        unit = session.unit
        rep = record_representative.c
        exists = unit.conn.execute(
            select(rep.id).where(
                rep.patient_id == patient_id,
                rep.representative_patient_id == rep_pid,
                rep.kind == kind,
                active(moment),
            )
        ).first()
        if exists is not None:
            return False
        session.check("record-representative", "Patient", patient_id)
        unit.conn.execute(
            insert(record_representative).values(
                id=str(uuid.uuid4()),
                patient_id=patient_id,
                representative_patient_id=rep_pid,
                kind=kind,
                source=source,
                since=stamp(moment),
                until=None if until is None else stamp(until),
            )
        )
        queue(unit.conn, patient_id, rep_pid, templates.REPRESENTATIVE, moment)
        return True
