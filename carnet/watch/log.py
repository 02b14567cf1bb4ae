"""The accesses of professionals, read from the audit log over a window of days.

Each allowed event by a professional that names a patient's slice becomes one ``Access`` per
patient; failed sign-ins are counted per account and day. Events are found by id: audit event
ids are UUIDv7 (carnet/db/ids.py), so the ids minted from an instant on sort after a bound built
from it, and the window is one range scan of the event-id index. The log is drained and
sequenced first, so the scan sees the reads the spool still held.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson
from sqlalchemy import select

from carnet.audit.models import audit_event, audit_event_patient
from carnet.audit.service import AuditService
from carnet.watch.features import LOCAL_ZONE, Access

PROFESSIONAL_ROLE = "professional"
BATCH = 5000


def first_id_at(moment: datetime) -> str:
    """The smallest UUIDv7 minted at or after ``moment``."""
    millis = int(moment.timestamp() * 1000)
    return str(uuid.UUID(int=(millis & (1 << 48) - 1) << 80))


@dataclass
class LogWindow:
    accesses: list[Access] = field(default_factory=list)
    failed_sign_ins: dict[tuple[str, date], int] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # actor -> role (professional:...)


def read_window(audit: AuditService, since: datetime) -> LogWindow:
    """Professionals' accesses and failed sign-ins recorded since ``since``."""
    audit.checkpoint()  # drain the spool: reads answered under a writer's lock are in it
    e, p = audit_event.c, audit_event_patient.c
    found = LogWindow()
    failures: dict[tuple[str, date], int] = defaultdict(int)
    after = first_id_at(since)
    inclusive = True
    while True:
        with audit.store.read() as conn:
            ids = conn.execute(
                select(e.event_id, e.seq, e.body)
                .where(e.event_id >= after if inclusive else e.event_id > after)
                .order_by(e.event_id)
                .limit(BATCH)
            ).all()
            if not ids:
                break
            seqs = [r.seq for r in ids]
            patients: dict[int, list[str]] = defaultdict(list)
            for named in conn.execute(
                select(p.seq, p.patient_id).where(p.seq.in_(seqs)).order_by(p.seq, p.patient_id)
            ):
                patients[int(named.seq)].append(str(named.patient_id))
        for row in ids:
            _take(found, failures, orjson.loads(row.body), patients.get(int(row.seq), []))
        after, inclusive = str(ids[-1].event_id), False
    found.failed_sign_ins = dict(failures)
    return found


def _take(
    found: LogWindow,
    failures: dict[tuple[str, date], int],
    body: dict[str, object],
    patients: list[str],
) -> None:
    role = str(body.get("role") or "")
    if not role.startswith(PROFESSIONAL_ROLE):
        return
    actor = str(body.get("actor") or "")
    at = datetime.fromisoformat(str(body.get("time")).replace("Z", "+00:00"))
    action = str(body.get("action") or "")
    outcome = body.get("outcome")
    if action == "login-failed":
        failures[(actor, at.astimezone(LOCAL_ZONE).date())] += 1
        return
    if not isinstance(outcome, int) or outcome >= 400 or body.get("purpose") == "authentication":
        return
    found.roles[actor] = role
    rule = str(body.get("rule") or "")
    for patient_id in patients:
        found.accesses.append(
            Access(
                event_id=str(body.get("id")),
                at=at,
                actor=actor,
                patient_id=patient_id,
                action=action,
                source=str(body.get("source") or ""),
                emergency=rule.startswith("break-glass") or action == "break-glass",
            )
        )
