"""RecordService: the personal space's accounts.

A person's space goes ``pending`` (provisioned from the insured-person register, notified, inside
the objection window) -> ``open`` (the window passed) -> ``closed`` (closure asked for, or an
objection after the window) -> ``shredded`` (the retention period ended: the patient's data key is
destroyed). An objection inside the window makes it ``refused`` (kept, then shredded, the same way).

Every step runs as one interaction of the FHIR service, so it is one transaction and leaves one
audit event (``record-provision``, ``record-object``, ``record-open``, ``record-close``,
``record-shred``, ``record-reopen``, ``record-notify``, ``record-representative``) touching the person's Patient: ids
only. Patients are created through ``FhirService`` (identity matching runs on them) and shredded
through ``Unit.destroy_patient_key``; this module never touches resource rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine

from carnet.caller import RequestContext
from carnet.crypto.blind_index import BlindIndexer
from carnet.db.engine import reading
from carnet.db.instants import stamp, utc_now
from carnet.fhir.errors import bad_request, conflict, not_found
from carnet.fhir.service import FhirService, FhirSession
from carnet.record import notifications as templates
from carnet.record.activation import ACTIVATION, ActivationCodes
from carnet.record.dates import add_years
from carnet.record.models import (
    CLOSED,
    OPEN,
    PENDING,
    REFUSED,
    SHREDDED,
    record_notification,
    record_space,
)
from carnet.record.notifications import Notification, NotificationChannel
from carnet.record.outbox import notify, pending
from carnet.record.provisioning import Provisioning, ProvisionReport
from carnet.record.register import InsuredPerson
from carnet.record.representatives import Representatives

log = logging.getLogger("carnet.record")

REASONS = ("objection", "request", "death", "operator")
CloseHook = Callable[[Connection, str, RequestContext], object]


@dataclass(frozen=True)
class Space:
    """A person's space as the API shows it (ids, states, instants)."""

    patient_id: str
    state: str
    source: str
    provisioned_at: str
    objection_deadline: str | None
    opened_at: str | None
    closed_at: str | None
    reason: str | None
    retention_until: str | None
    shredded_at: str | None
    representatives: list[dict[str, Any]] = field(default_factory=list)
    represented: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepReport:
    opened: list[str] = field(default_factory=list)
    shredded: list[str] = field(default_factory=list)
    delivered: int = 0


def accepts_writes(conn: Connection, patient_id: str) -> bool:
    """Whether a record takes new data: unless its space was refused, closed or shredded. A
    patient with no space row (data loaded before provisioning, imports) counts as open. The
    policy decision point asks this before any deposit."""
    state = conn.execute(
        select(record_space.c.state).where(record_space.c.patient_id == patient_id)
    ).scalar_one_or_none()
    return state is None or state == OPEN


class RecordService:
    """Spaces, objections, closures, shredding and the notification outbox; the legal
    representatives are ``representatives``' (a space shows them, provisioning links them)."""

    def __init__(
        self,
        fhir: FhirService,
        blind: BlindIndexer,
        representatives: Representatives,
        *,
        engine: Engine,
        objection_window_days: float = 42,
        retention_years: float = 10,
        on_close: CloseHook | None = None,
    ) -> None:
        """``on_close(conn, patient_id, ctx)`` runs in every closure's transaction (a closure,
        an objection, a refusal): the apps' grants and refresh tokens end there (given by
        carnet/app.py: authn's ``end_app_access_in``; this domain does not know apps)."""
        self.fhir = fhir
        self.on_close = on_close
        self.engine = engine  # the record tables' own reads (no resource rows)
        self.blind = blind
        self.representatives = representatives
        self.provisioning = Provisioning(
            fhir,
            blind,
            representatives,
            self.close_in,
            objection_window=timedelta(days=objection_window_days),
        )
        self.objection_window = timedelta(days=objection_window_days)
        self.retention_years = retention_years
        self.activation = ActivationCodes(fhir, engine)
        """The one-time codes sent through the outbox (activation, forgotten password)."""

    # -- reads for the policy decision point ------------------------------------------------------

    def is_open(self, patient_id: str) -> bool:
        """Whether ``patient_id`` has a space and it is open (pending, refused, closed: False)."""
        with reading(self.engine) as conn:
            return self.is_open_in(conn, patient_id)

    def is_open_in(self, conn: Connection, patient_id: str) -> bool:
        """:meth:`is_open` on an open connection."""
        state = conn.execute(
            select(record_space.c.state).where(record_space.c.patient_id == patient_id)
        ).scalar_one_or_none()
        return state == OPEN

    def space(self, patient_id: str, *, now: datetime | None = None) -> Space | None:
        """The space of ``patient_id`` with its current representatives; None if it has none."""
        with reading(self.engine) as conn:
            row = conn.execute(
                select(record_space).where(record_space.c.patient_id == patient_id)
            ).first()
            if row is None:
                return None
            representatives = self.representatives.current_of_in(conn, patient_id, now=now)
            represented = self.representatives.represented_patients_in(conn, patient_id, now=now)
        return Space(
            patient_id=row.patient_id,
            state=row.state,
            source=row.source,
            provisioned_at=row.provisioned_at,
            objection_deadline=row.objection_deadline,
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            reason=row.reason,
            retention_until=row.retention_until,
            shredded_at=row.shredded_at,
            representatives=representatives,
            represented=represented,
        )

    # -- provisioning -----------------------------------------------------------------------------

    def provision(
        self,
        people: list[InsuredPerson],
        *,
        ctx: RequestContext,
        now: datetime | None = None,
    ) -> ProvisionReport:
        """Pending spaces for the people of an insured-person register file: see
        :meth:`Provisioning.provision`."""
        return self.provisioning.provision(people, ctx=ctx, now=now)

    def open_space(
        self, patient_id: str, *, ctx: RequestContext, now: datetime | None = None
    ) -> bool:
        """Open a space at once for a known Patient (a person asking at the desk, the demo):
        created open if there is none, opened if pending. False if it was already open."""
        moment = now or utc_now()
        with self.fhir.session(ctx, "record-open", "Patient", patient_id) as session:
            unit = session.unit
            state = unit.conn.execute(
                select(record_space.c.state).where(record_space.c.patient_id == patient_id)
            ).scalar_one_or_none()
            if state == OPEN:
                return False
            if state is not None and state != PENDING:
                raise conflict(f"the space of Patient/{patient_id} is {state}: reopen it instead")
            stored = session.current("Patient", patient_id)
            if stored is None or stored.deleted:
                raise not_found(f"Patient/{patient_id} is not known")
            session.check("record-open", "Patient", patient_id)
            if state is None:
                unit.conn.execute(
                    insert(record_space).values(
                        patient_id=patient_id,
                        state=OPEN,
                        source="request",
                        provisioned_at=stamp(moment),
                        opened_at=stamp(moment),
                        updated_at=stamp(moment),
                    )
                )
            else:
                unit.conn.execute(
                    update(record_space)
                    .where(record_space.c.patient_id == patient_id)
                    .values(state=OPEN, opened_at=stamp(moment), updated_at=stamp(moment))
                )
            notify(unit.conn, patient_id, templates.OPENED, moment)
        return True

    # -- objection, closure -----------------------------------------------------------------------

    def object(self, patient_id: str, *, ctx: RequestContext, now: datetime | None = None) -> str:
        """The person (or a representative) objects: a pending space is refused, an open one is
        closed; either way its data is kept until the retention ends, then shredded. Returns the
        new state."""
        return self._close(patient_id, "objection", "record-object", ctx, now)

    def object_with_code(
        self, patient_id: str, code: str, *, ctx: RequestContext, now: datetime | None = None
    ) -> str:
        """The objection made with the space's activation code (the /activation pages): the
        code is claimed in the objection's own transaction, so an objection that fails (the
        space closed meanwhile: 409) leaves the code usable, and a code that is not (or no
        longer) this space's live one refuses the objection (400); both are audited."""

        def claim(conn: Connection) -> None:
            if self.activation.claim_in(conn, code, ACTIVATION, patient_id=patient_id) is None:
                raise bad_request("the activation code is not valid")

        return self._close(patient_id, "objection", "record-object", ctx, now, claim)

    def close(
        self,
        patient_id: str,
        *,
        reason: str = "request",
        ctx: RequestContext,
        now: datetime | None = None,
    ) -> str:
        """Close a pending or open space (``reason``: request, death, operator, objection); its
        data is kept until the retention ends, then shredded. Returns the new state."""
        if reason not in REASONS:
            raise bad_request(f"closure reason must be one of {', '.join(REASONS)}")
        return self._close(patient_id, reason, "record-close", ctx, now)

    def _close(
        self,
        patient_id: str,
        reason: str,
        action: str,
        ctx: RequestContext,
        now: datetime | None,
        claim: Callable[[Connection], None] | None = None,
    ) -> str:
        moment = now or utc_now()
        with self.fhir.session(ctx, action, "Patient", patient_id) as session:
            unit = session.unit
            state = self._state(unit.conn, patient_id)
            if state not in (PENDING, OPEN):
                raise conflict(f"the space of Patient/{patient_id} is already {state}")
            if claim is not None:  # in this transaction: spent only if the closure commits
                claim(unit.conn)
            new = self.close_in(session, patient_id, state, reason, action, moment)
        log.info("space of Patient/%s %s (%s)", patient_id, new, reason)
        return new

    def close_in(
        self,
        session: FhirSession,
        patient_id: str,
        state: str,
        reason: str,
        action: str,
        moment: datetime,
    ) -> str:
        """Close the space of ``patient_id`` (now ``state``) inside the caller's session:
        refused (an objection while pending) or closed, kept until the retention ends."""
        unit = session.unit
        new = REFUSED if state == PENDING and reason == "objection" else CLOSED
        session.check(action, "Patient", patient_id)
        unit.conn.execute(
            update(record_space)
            .where(record_space.c.patient_id == patient_id)
            .values(
                state=new,
                reason=reason,
                closed_at=stamp(moment),
                retention_until=stamp(add_years(moment, self.retention_years)),
                updated_at=stamp(moment),
            )
        )
        if self.on_close is not None:  # a closed space leaves no app able to read the record
            self.on_close(unit.conn, patient_id, session.ctx)
        kind = templates.REFUSED if new == REFUSED else templates.CLOSED
        notify(unit.conn, patient_id, kind, moment)
        return new

    def reopen(self, patient_id: str, *, ctx: RequestContext, now: datetime | None = None) -> str:
        """The person changes their mind before the retention ends: a refused or closed space
        (not a deceased person's) opens again with its data; the shredding is called off."""
        moment = now or utc_now()
        with self.fhir.session(ctx, "record-reopen", "Patient", patient_id) as session:
            unit = session.unit
            row = unit.conn.execute(
                select(record_space.c.state, record_space.c.reason).where(
                    record_space.c.patient_id == patient_id
                )
            ).first()
            if row is None:
                raise not_found(f"Patient/{patient_id} has no personal space")
            if row.state not in (REFUSED, CLOSED) or row.reason == "death":
                raise conflict(f"the space of Patient/{patient_id} cannot reopen ({row.state})")
            session.check("record-reopen", "Patient", patient_id)
            unit.conn.execute(
                update(record_space)
                .where(record_space.c.patient_id == patient_id)
                .values(
                    state=OPEN,
                    opened_at=stamp(moment),
                    closed_at=None,
                    reason=None,
                    retention_until=None,
                    updated_at=stamp(moment),
                )
            )
            notify(unit.conn, patient_id, templates.OPENED, moment)
        log.info("space of Patient/%s reopened", patient_id)
        return OPEN

    def retention_end(self, closed_at: datetime) -> datetime:
        """Until when a space closed at ``closed_at`` keeps its data (then it is shredded): what
        the closure page tells the person before they confirm."""
        return add_years(closed_at, self.retention_years)

    def _state(self, conn: Connection, patient_id: str) -> str:
        state = conn.execute(
            select(record_space.c.state).where(record_space.c.patient_id == patient_id)
        ).scalar_one_or_none()
        if state is None:
            raise not_found(f"Patient/{patient_id} has no personal space")
        return str(state)

    # -- sweep: open, shred, deliver --------------------------------------------------------------

    def sweep(
        self,
        channel: NotificationChannel | None = None,
        *,
        ctx: RequestContext,
        now: datetime | None = None,
    ) -> SweepReport:
        """Open the spaces whose objection window has passed, crypto-shred the refused or closed
        ones whose retention has ended, then deliver queued notifications through ``channel``."""
        moment = now or utc_now()
        report = SweepReport()
        s = record_space.c
        with reading(self.engine) as conn:
            due_open = (
                conn.execute(
                    select(s.patient_id).where(
                        s.state == PENDING, s.objection_deadline <= stamp(moment)
                    )
                )
                .scalars()
                .all()
            )
            due_shred = (
                conn.execute(
                    select(s.patient_id).where(
                        s.state.in_((REFUSED, CLOSED)), s.retention_until <= stamp(moment)
                    )
                )
                .scalars()
                .all()
            )
        for pid in due_open:
            if self._open(pid, ctx, moment):
                report.opened.append(pid)
        for pid in due_shred:
            if self._shred(pid, ctx, moment):
                report.shredded.append(pid)
        if channel is not None:
            report.delivered = self.deliver(channel, ctx=ctx, now=moment)
        return report

    def _open(self, patient_id: str, ctx: RequestContext, moment: datetime) -> bool:
        with self.fhir.session(ctx, "record-open", "Patient", patient_id) as session:
            unit = session.unit
            s = record_space.c
            done = unit.conn.execute(
                update(record_space)
                .where(
                    s.patient_id == patient_id,
                    s.state == PENDING,
                    s.objection_deadline <= stamp(moment),
                )
                .values(state=OPEN, opened_at=stamp(moment), updated_at=stamp(moment))
            ).rowcount
            if not done:
                return False  # objected or opened by a concurrent sweep
            session.check("record-open", "Patient", patient_id)
            notify(unit.conn, patient_id, templates.OPENED, moment)
        log.info("space of Patient/%s opened", patient_id)
        return True

    def _shred(self, patient_id: str, ctx: RequestContext, moment: datetime) -> bool:
        with self.fhir.session(ctx, "record-shred", "Patient", patient_id) as session:
            unit = session.unit
            s = record_space.c
            done = unit.conn.execute(
                update(record_space)
                .where(
                    s.patient_id == patient_id,
                    s.state.in_((REFUSED, CLOSED)),
                    s.retention_until <= stamp(moment),
                )
                .values(state=SHREDDED, shredded_at=stamp(moment), updated_at=stamp(moment))
            ).rowcount
            if not done:
                return False
            session.check("record-shred", "Patient", patient_id)
            self.representatives.end_all_in(session, patient_id, moment)
            unit.conn.execute(
                delete(record_notification).where(
                    record_notification.c.patient_id == patient_id,
                    record_notification.c.sent_at.is_(None),
                )
            )
            session.destroy_patient_key(patient_id)
        log.info("space of Patient/%s crypto-shredded", patient_id)
        return True

    def pending_notifications(self) -> list[Notification]:
        """Queued notifications, oldest first."""
        with reading(self.engine) as conn:
            return pending(conn)

    def deliver(
        self,
        channel: NotificationChannel,
        *,
        ctx: RequestContext,
        now: datetime | None = None,
    ) -> int:
        """Send queued notifications through ``channel``; each sent one is marked and audited
        (``record-notify``). One that fails to send stays queued. Returns how many were sent."""
        moment = now or utc_now()
        sent = 0
        for notification in self.pending_notifications():
            with self.fhir.session(
                ctx, "record-notify", "Patient", notification.patient_id
            ) as session:
                unit = session.unit
                try:
                    channel.send(notification)
                except OSError as exc:
                    log.warning(
                        "notification %s not sent (%s)", notification.id, type(exc).__name__
                    )
                    continue
                session.check("record-notify", "Patient", notification.patient_id)
                unit.conn.execute(
                    update(record_notification)
                    .where(record_notification.c.id == notification.id)
                    .values(sent_at=stamp(moment), channel=channel.name, secret=None)
                )
            sent += 1
        return sent
