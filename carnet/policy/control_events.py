"""What every control shares: its refusal (``ControlError``) and its audit event.

A control (a mask, a block, an emergency access) is one event in the patient's slice of the log,
written in the same transaction as the change, so the access history shows exactly what happened.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, Engine

from carnet.audit.events import Touched, build_event
from carnet.audit.service import AuditService, actor_of
from carnet.caller import RequestContext
from carnet.db.engine import writing


class ControlError(Exception):
    """A refused control: ``status`` 400 (bad input), 403 (not allowed) or 404 (unknown)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def audit_control_in(
    audit: AuditService,
    conn: Connection,
    ctx: RequestContext,
    action: str,
    patient_id: str,
    refs: list[tuple[str, str]],
    rule: str | None,
    status: int = 200,
) -> None:
    """One event in the patient's slice of the log, in the same transaction as the change."""
    touched = [Touched(t, i, None, patient_id) for t, i in refs] or [
        Touched("Patient", patient_id, None, patient_id)
    ]
    who = actor_of(ctx if rule is None else replace(ctx, rule=rule))
    event = build_event(who, action, touched[0].res_type, status, touched)
    audit.store.append(conn, [event])
    audit.appended(1)


def audit_control(
    audit: AuditService,
    engine: Engine,
    ctx: RequestContext,
    action: str,
    patient_id: str,
    refs: list[tuple[str, str]],
    rule: str | None = None,
    status: int = 200,
) -> None:
    """The same event in a transaction of its own (a read, or a refusal that changes nothing)."""
    with writing(engine) as conn:
        audit_control_in(audit, conn, ctx, action, patient_id, refs, rule, status)
