"""PolicyAccess: the FHIR engine's access hook, asking the policy decision point and recording.

Every interaction goes: ``check`` (may this caller attempt this action on this type at all?),
then ``check_resource`` on every resource read or written, or ``visibility`` for searches,
history and compartment reads, then ``record``. Each allow or deny lands in the audit log with
the rule that decided it. A professional's deposit creates their care relationship.
"""

from __future__ import annotations

import weakref
from dataclasses import replace

from sqlalchemy import Connection, insert, select

from carnet.access.models import access_care
from carnet.access.policy import Decision, PolicyDecisionPoint, Visibility, rule_action
from carnet.access.principal import Kind
from carnet.audit.events import utc_stamp
from carnet.audit.service import AuditService
from carnet.fhir.access import RequestContext
from carnet.fhir.errors import FhirError, Issue
from carnet.fhir.repository import StoredResource, Unit

# Interactions on no single type (system history, bulk export and import) are for callers with
# system scopes only.
SYSTEM_ACTIONS = frozenset({"export", "export-file", "import"})


def refusal(decision: Decision, res_type: str | None, res_id: str | None) -> FhirError:
    """403 with the reason, or for an item hidden from the caller the very 404 of a missing one."""
    if decision.status == 404:
        what = f"{res_type}/{res_id}" if res_type and res_id else "the resource"
        return FhirError(404, [Issue("not-found", f"{what} is not known")], rule=decision.rule)
    return FhirError(
        403, [Issue("forbidden", decision.reason or "access refused")], rule=decision.rule
    )


class PolicyAccess:
    """Decides with the PDP, records with the audit log (in the interaction's transaction)."""

    def __init__(self, audit: AuditService, pdp: PolicyDecisionPoint) -> None:
        self.audit = audit
        self.pdp = pdp
        self._rules: weakref.WeakKeyDictionary[Unit, str] = weakref.WeakKeyDictionary()
        # Decisions made in one unit of work (a request, a Bundle, an import batch): the facts
        # they rest on do not change inside it, and a Bundle touches one patient many times.
        self._decided: weakref.WeakKeyDictionary[Unit, dict[tuple[object, ...], Decision]] = (
            weakref.WeakKeyDictionary()
        )
        self._noted: weakref.WeakKeyDictionary[Unit, set[tuple[str, str]]] = (
            weakref.WeakKeyDictionary()
        )

    def check(
        self, unit: Unit, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> None:
        principal = ctx.principal
        if res_type is None or action in SYSTEM_ACTIONS:
            system = principal.kind in (Kind.OPERATOR, Kind.BACKEND)
            decision = (
                self.pdp.may_attempt(unit.conn, principal, action, res_type or "*")
                if system
                else Decision(False, "system-only", 403, f"{action} needs system scopes")
            )
            if action == "import":  # an import creates and updates: it needs c and u, not r
                for needed in ("create", "update"):
                    if decision.allowed:
                        decision = self.pdp.may_attempt(
                            unit.conn, principal, needed, res_type or "*"
                        )
        elif action in ("everything", "summary"):
            decision = self.pdp.may_attempt(unit.conn, principal, "read", "Patient")
        else:
            # A Bundle asks this once per entry: decided once per unit, type and action.
            key = ("attempt", principal, action, res_type)
            decided = self._decided.setdefault(unit, {})
            cached = decided.get(key)
            if cached is None:
                cached = decided[key] = self.pdp.may_attempt(unit.conn, principal, action, res_type)
            decision = cached
        if not decision.allowed:
            raise refusal(decision, res_type, res_id)
        self._rules[unit] = decision.rule
        self.audit.check(unit, replace(ctx, rule=decision.rule), action, res_type, res_id)

    def check_resource(
        self, unit: Unit, ctx: RequestContext, action: str, stored: StoredResource
    ) -> None:
        system = ctx.principal.kind in (Kind.OPERATOR, Kind.BACKEND)  # system scopes hide nothing
        flags = frozenset() if system else self.pdp.flags(unit.conn, stored.res_type, stored.res_id)
        key = (ctx.principal, action, stored.res_type, stored.patient_id, flags)
        decided = self._decided.setdefault(unit, {})
        decision = decided.get(key)
        if decision is None:
            decision = self.pdp.decide(
                unit.conn, ctx.principal, action, stored.res_type, stored.patient_id, flags
            )
            decided[key] = decision
        if not decision.allowed:
            raise refusal(decision, stored.res_type, stored.res_id)
        self._rules[unit] = decision.rule

    def visibility(self, unit: Unit, ctx: RequestContext, action: str) -> Visibility | None:
        vis = self.pdp.visibility(unit.conn, ctx.principal, action)
        self._rules[unit] = vis.rules
        return None if vis.unrestricted else vis

    def record(
        self,
        unit: Unit,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        touched: list[StoredResource],
    ) -> None:
        principal = ctx.principal
        if rule_action(action) == "write" and action != "delete":
            noted = self._noted.setdefault(unit, set())
            for stored in touched:
                if not stored.patient_id:
                    continue
                carers: list[tuple[str, str]] = []
                if principal.kind is Kind.PROFESSIONAL and principal.rpps:
                    carers.append((principal.rpps, "deposit"))
                if stored.res_type == "Encounter" and stored.body and "participant" in stored.body:
                    carers.extend((rpps, "encounter") for rpps in encounter_rpps(unit, stored))
                for rpps, source in carers:
                    if (stored.patient_id, rpps) not in noted:
                        note_care(unit.conn, stored.patient_id, rpps, source)
                        noted.add((stored.patient_id, rpps))
        rule = self._rules.get(unit, ctx.rule)
        self.audit.record(unit, replace(ctx, rule=rule), action, res_type, touched)

    def record_failure(
        self,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        res_id: str | None,
        status: int,
    ) -> None:
        self.audit.record_failure(ctx, action, res_type, res_id, status)


RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"


def encounter_rpps(unit: Unit, encounter: StoredResource) -> list[str]:
    """RPPS numbers of the practitioners taking part in an Encounter (their care relationship)."""
    found: list[str] = []
    for participant in (encounter.body or {}).get("participant", []):
        reference = str((participant.get("individual") or {}).get("reference", ""))
        kind, _, pract_id = reference.partition("/")
        if kind != "Practitioner" or not pract_id:
            continue
        practitioner = unit.current("Practitioner", pract_id)
        if practitioner is None or practitioner.body is None:
            continue
        found.extend(
            str(i["value"])
            for i in practitioner.body.get("identifier", [])
            if i.get("system") == RPPS_SYSTEM and i.get("value")
        )
    return found


def note_care(conn: Connection, patient_id: str, rpps: str, source: str) -> None:
    """Record a care relationship if there is none yet (a deposit, an encounter, a declaration)."""
    c = access_care.c
    exists = conn.execute(select(c.rpps).where(c.patient_id == patient_id, c.rpps == rpps)).first()
    if exists is None:
        conn.execute(
            insert(access_care).values(
                patient_id=patient_id,
                rpps=rpps,
                source=source,
                medecin_traitant=False,
                created_at=utc_stamp(),
            )
        )
