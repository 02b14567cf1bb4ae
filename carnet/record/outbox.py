"""The notification outbox and the representations in force (who a notification goes to)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select

from carnet.db.instants import stamp, utc_now
from carnet.record import notifications as templates
from carnet.record.models import record_notification, record_representative, record_space
from carnet.record.notifications import Notification


def active(now: datetime | None) -> Any:
    """Representations in force at ``now``: not ended, begun, and not past their term."""
    at = stamp(now or utc_now())
    rep = record_representative.c
    return and_(rep.ended_at.is_(None), rep.since <= at, or_(rep.until.is_(None), rep.until > at))


def notify(conn: Connection, patient_id: str, kind: str, moment: datetime) -> int:
    """Queue ``kind`` for the person (unless a minor: their parents instead) and for every
    current representative."""
    rep = record_representative.c
    links = conn.execute(
        select(rep.representative_patient_id, rep.kind).where(
            rep.patient_id == patient_id, active(moment)
        )
    ).all()
    recipients = [r.representative_patient_id for r in links]
    if not any(r.kind == "parent" for r in links):
        recipients.insert(0, patient_id)
    for recipient in dict.fromkeys(recipients):
        queue(conn, patient_id, recipient, kind, moment)
    return len(dict.fromkeys(recipients))


def queue(
    conn: Connection,
    patient_id: str,
    recipient: str,
    kind: str,
    moment: datetime,
    secret: str | None = None,
) -> None:
    """Add one notification to the outbox (``secret``: a one-time code, erased once delivered)."""
    conn.execute(
        insert(record_notification).values(
            id=str(uuid.uuid4()),
            patient_id=patient_id,
            recipient_patient_id=recipient,
            kind=kind,
            created_at=stamp(moment),
            secret=secret,
        )
    )


def pending(conn: Connection) -> list[Notification]:
    """Queued notifications, oldest first (with the objection deadline for provisioning)."""
    n = record_notification.c
    rows = conn.execute(
        select(
            n.id,
            n.patient_id,
            n.recipient_patient_id,
            n.kind,
            n.created_at,
            n.secret,
            record_space.c.objection_deadline,
        )
        .select_from(
            record_notification.outerjoin(record_space, record_space.c.patient_id == n.patient_id)
        )
        .where(n.sent_at.is_(None))
        .order_by(n.created_at, n.id)
    ).all()
    return [
        Notification(
            r.id,
            r.patient_id,
            r.recipient_patient_id,
            r.kind,
            r.created_at,
            r.objection_deadline if r.kind == templates.PROVISIONED else None,
            r.secret,
        )
        for r in rows
    ]
