"""Emergency access ("bris de glace"): a professional opens a record they have no care
relationship with, for a stated reason, for a limited time.

The access is audited in the patient's slice of the log (so it is in their access history and
their emergency alert), raises an operator alert, and is refused when the patient opposed
emergency access or blocked this professional. The decision point reads the running grants.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from carnet.audit.service import AuditService
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.db.instants import stamp, utc_now
from carnet.fhir.service import FhirService
from carnet.policy.control_events import ControlError, audit_control, audit_control_in
from carnet.policy.models import (
    access_alert,
    access_block,
    access_break_glass,
    access_preference,
)

BREAK_GLASS_REASONS = ("unconscious", "life-threatening", "unable-to-consent", "other-emergency")


class EmergencyAccess:
    """Break-glass grants, the workspace's red banner, and the operator's alerts."""

    def __init__(
        self,
        engine: Engine,
        fhir: FhirService,
        audit: AuditService,
        *,
        minutes: float,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.fhir = fhir
        self.audit = audit
        self.minutes = minutes
        self.now = now or utc_now

    def break_glass(self, ctx: RequestContext, patient_id: str, reason: str) -> dict[str, str]:
        """Emergency access for a professional: time-limited, audited, alerted, shown to the
        patient; refused when the patient opposed emergency access or blocked this professional."""
        principal = ctx.principal
        if principal.kind is not Kind.PROFESSIONAL or not principal.rpps:
            raise ControlError(403, "break-glass is for health professionals")
        if reason not in BREAK_GLASS_REASONS:
            raise ControlError(400, f"reason must be one of {', '.join(BREAK_GLASS_REASONS)}")
        moment = self.now()
        expires = moment + timedelta(minutes=self.minutes)
        emergency = replace(ctx, purpose="emergency")
        with self.fhir.session(emergency, "break-glass", "Patient", patient_id) as session:
            patient = session.current("Patient", patient_id)  # the grant is checked below
        if patient is None or patient.deleted:
            raise ControlError(404, "no such patient")
        grant_id = str(uuid.uuid4())
        with writing(self.engine) as conn:
            refused = _emergency_refusal(conn, patient_id, principal.rpps)
            if refused is None:
                conn.execute(
                    insert(access_break_glass).values(
                        id=grant_id,
                        rpps=principal.rpps,
                        patient_id=patient_id,
                        reason=reason,
                        granted_at=stamp(moment),
                        expires_at=stamp(expires),
                    )
                )
                conn.execute(
                    insert(access_alert).values(
                        id=str(uuid.uuid4()),
                        kind="break-glass",
                        patient_id=patient_id,
                        subject=principal.rpps,
                        created_at=stamp(moment),
                        acknowledged=False,
                    )
                )
                audit_control_in(
                    self.audit,
                    conn,
                    emergency,
                    "break-glass",
                    patient_id,
                    [],
                    f"break-glass-read reason:{reason}",
                )
        if refused is not None:  # recorded in a transaction of its own: it changes nothing else
            rule, message = refused
            audit_control(
                self.audit,
                self.engine,
                emergency,
                "break-glass-refused",
                patient_id,
                [],
                f"{rule} reason:{reason}",
                403,
            )
            raise ControlError(403, message)
        return {"id": grant_id, "patient": patient_id, "expires": stamp(expires)}

    def emergency_until(self, principal: Principal, patient_id: str) -> str | None:
        """When this professional's emergency access to the record ends (the latest grant still
        running), or None: for the red banner of the workspace while it lasts."""
        if principal.kind is not Kind.PROFESSIONAL or not principal.rpps:
            return None
        g = access_break_glass.c
        now = stamp(self.now())
        with self.engine.connect() as conn:
            ends = conn.execute(
                select(g.expires_at)
                .where(g.rpps == principal.rpps, g.patient_id == patient_id, g.expires_at > now)
                .order_by(g.expires_at.desc())
                .limit(1)
            ).scalar()
        return None if ends is None else str(ends)

    def alerts(self, ctx: RequestContext, *, open_only: bool = True) -> list[dict[str, Any]]:
        """Alerts for the operator (break-glass, lockouts); ids only."""
        if ctx.principal.kind is not Kind.OPERATOR:
            raise ControlError(403, "alerts are for operators")
        a = access_alert.c
        query = select(access_alert).order_by(a.created_at.desc())
        if open_only:
            query = query.where(a.acknowledged.is_(False))
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(500)).all()
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "patient": r.patient_id,
                "subject": r.subject,
                "created": r.created_at,
                "acknowledged": bool(r.acknowledged),
            }
            for r in rows
        ]

    def refused(self, ctx: RequestContext, action: str, status: int) -> None:
        """Record a refused emergency request (bad input, not allowed) in its own transaction."""
        self.audit.record_failure(replace(ctx, rule="controls-refused"), action, None, None, status)


def _emergency_refusal(conn: Connection, patient_id: str, rpps: str) -> tuple[str, str] | None:
    """Why an emergency access is refused (the rule, the caller's message), or None. A block
    names this professional, so it is told before a general opposition."""
    p, b = access_preference.c, access_block.c
    blocked = conn.execute(select(b.rpps).where(b.patient_id == patient_id, b.rpps == rpps)).first()
    if blocked is not None:
        return "pro-blocked", "this patient has blocked your access to their record"
    opposed = conn.execute(select(p.emergency_opposition).where(p.patient_id == patient_id)).first()
    if opposed is not None and opposed[0]:
        return "emergency-opposition", "this patient refused emergency access"
    return None
