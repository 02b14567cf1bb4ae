"""Alerts the patient chooses, queued in the notification outbox by a sweep over the audit log.

A person (or their representative) chooses to be told of a professional's first access to the
record and of a new document deposited by someone else. Emergency access (break-glass) is always
told, whatever the choice (EHDS art. 9: a person is informed of every access, emergency
included). The sweep reads the sequenced log forward from where it stopped (``after_leaf``), so
an alert is never lost to a crash or a late commit and never sent twice: the outbox rows and the
new position commit together. Alerts carry ids and a template code only, like every notification.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from carnet.audit.events import Event, Touched, build_event
from carnet.audit.feed import PatientEvent, sequenced_after
from carnet.audit.service import AuditService, actor_of
from carnet.caller import RequestContext
from carnet.db.engine import writing
from carnet.db.instants import stamp, utc_now
from carnet.record import notifications as templates
from carnet.record.models import record_alert_choice, record_alert_cursor, record_alert_seen
from carnet.record.outbox import notify

BATCH = 2000  # patient slices read per transaction
_ACCESS_ACTIONS = frozenset(
    {"read", "vread", "search", "history", "everything", "summary", "get", "export"}
)
_WRITE_ACTIONS = frozenset({"create", "post"})


class _ClaimedElsewhereError(Exception):
    """Another sweep moved the position since this one read it (its transaction rolls back)."""


def _claim(conn: Connection, after: int | None, top: int) -> None:
    """Move the position from ``after`` (None: never swept) to ``top``, or raise
    ``_ClaimedElsewhereError`` if another sweep moved it first: a compare-and-set on the single
    row, so each event's alerts are queued by exactly one sweep, across threads and workers."""
    cursor = record_alert_cursor.c
    if after is None:
        try:  # the transaction rolls back whole on the way out
            conn.execute(insert(record_alert_cursor).values(id=1, after_leaf=top))
        except IntegrityError:
            raise _ClaimedElsewhereError from None
        return
    moved = conn.execute(
        update(record_alert_cursor)
        .where(cursor.id == 1, cursor.after_leaf == after)
        .values(after_leaf=top)
    )
    if moved.rowcount != 1:
        raise _ClaimedElsewhereError


class ActingFor(Protocol):
    """Who a person acts for (the policy's controls answer; 404 for a record not theirs)."""

    def acting_for(self, ctx: RequestContext, patient_id: str | None) -> tuple[str, bool]: ...


@dataclass(frozen=True)
class AlertChoice:
    patient_id: str
    first_access: bool
    new_document: bool
    emergency: bool = True  # always: not a choice


class AlertService:
    """The patient's alert choices, and the sweep that queues the alerts they call for."""

    def __init__(
        self,
        engine: Engine,
        audit: AuditService,
        acting: ActingFor,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.acting = acting
        self.now = now or utc_now

    def choice(self, ctx: RequestContext, patient_id: str | None) -> AlertChoice:
        """The alerts chosen for the record (off by default, emergency always on); audited."""
        pid, represented = self.acting.acting_for(ctx, patient_id)
        c = record_alert_choice.c
        with self.engine.connect() as conn:
            row = conn.execute(select(record_alert_choice).where(c.patient_id == pid)).first()
        self.audit.append([self._event(ctx, "alerts-read", pid, represented)])
        return AlertChoice(pid, bool(row and row.first_access), bool(row and row.new_document))

    def choose(
        self, ctx: RequestContext, patient_id: str | None, *, first_access: bool, new_document: bool
    ) -> AlertChoice:
        """Set the alerts for the record; one audit event in the patient's history."""
        pid, represented = self.acting.acting_for(ctx, patient_id)
        c = record_alert_choice.c
        with writing(self.engine) as conn:
            conn.execute(delete(record_alert_choice).where(c.patient_id == pid))
            conn.execute(
                insert(record_alert_choice).values(
                    patient_id=pid,
                    first_access=first_access,
                    new_document=new_document,
                    updated_at=stamp(self.now()),
                )
            )
            self.audit.store.append(conn, [self._event(ctx, "alerts", pid, represented)])
        self.audit.appended(1)
        return AlertChoice(pid, first_access, new_document)

    @staticmethod
    def _event(ctx: RequestContext, action: str, patient_id: str, represented: bool) -> Event:
        """One event in the patient's part of the log (ids only), with who decided."""
        who = "controls-represented" if represented else "controls-self"
        return build_event(
            actor_of(replace(ctx, rule=f"{who} alerts")),
            action,
            "Patient",
            200,
            [Touched("Patient", patient_id, None, patient_id)],
        )

    # -- the sweep -----------------------------------------------------------------------------

    def sweep(self) -> int:
        """Queue the alerts of every access sealed in the log since the last sweep; returns
        how many notifications were queued (one per recipient)."""
        self.audit.checkpoint()  # drain the spool and sequence: only sequenced events are read
        queued = 0
        while True:
            with self.engine.connect() as conn:
                after = conn.execute(
                    select(record_alert_cursor.c.after_leaf).where(record_alert_cursor.c.id == 1)
                ).scalar_one_or_none()
            start = -1 if after is None else int(after)
            events = sequenced_after(self.audit, start, BATCH)
            if not events:
                return queued
            if len(events) == BATCH and events[0].leaf_index != events[-1].leaf_index:
                last = events[-1].leaf_index  # its other slices are in the next batch
                events = [e for e in events if e.leaf_index != last]
            try:
                with writing(self.engine) as conn:
                    # Claim the events first: a concurrent sweep that read the same position
                    # waits here for this one, then finds the position moved and gives up.
                    _claim(conn, None if after is None else start, events[-1].leaf_index)
                    moment = self.now()
                    for event in events:
                        for kind in self._alerts(conn, event, moment):
                            queued += notify(conn, event.patient_id, kind, moment)
            except _ClaimedElsewhereError:
                continue  # another sweep took these events: read the position again

    @staticmethod
    def _alerts(conn: Connection, event: PatientEvent, moment: datetime) -> list[str]:
        """The alerts one event calls for in its patient's record (and note a first access)."""
        body = event.body
        if int(body.get("outcome") or 500) >= 400:
            return []
        role = str(body.get("role") or "")
        action = str(body.get("action") or "")
        if action == "break-glass":
            return [templates.ALERT_EMERGENCY]  # whatever the choice
        if not role.startswith("professional") and role not in ("backend", "app"):
            return []  # the person's own steps, the platform's bookkeeping
        c = record_alert_choice.c
        chosen = conn.execute(
            select(c.first_access, c.new_document).where(c.patient_id == event.patient_id)
        ).first()
        alerts: list[str] = []
        if role.startswith("professional") and action in _ACCESS_ACTIONS | _WRITE_ACTIONS:
            actor = str(body.get("actor"))[:64]
            s = record_alert_seen.c
            seen = conn.execute(
                select(s.actor).where(s.patient_id == event.patient_id, s.actor == actor)
            ).first()
            if seen is None:
                conn.execute(
                    insert(record_alert_seen).values(
                        patient_id=event.patient_id, actor=actor, first_at=stamp(moment)
                    )
                )
                if chosen is not None and chosen.first_access:
                    alerts.append(templates.ALERT_FIRST_ACCESS)
        new_document = action in _WRITE_ACTIONS and any(
            ref.startswith("DocumentReference/") and ref.endswith("/_history/1")
            for ref in event.refs
        )
        if new_document and chosen is not None and chosen.new_document:
            alerts.append(templates.ALERT_NEW_DOCUMENT)
        return alerts
