"""PolicyAccess: the FHIR engine's access hook, asking the policy decision point and recording.

Every interaction goes: ``check`` (may this caller attempt this action on this type at all?),
then ``check_resource`` on every resource read or written, or ``visibility`` for searches,
history and compartment reads, then ``record``. Each allow or deny lands in the audit log with
the rule that decided it. A write records its author (``carnet.policy.authors``); a deposit
creates no care relationship: an Encounter recorded by the care organisation (a system caller)
does, in the patient's history and with an alert. A refusal on someone's item is recorded in
that person's part of the log, so it is in their access history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Connection, insert, select

from carnet.audit.events import Touched, build_event
from carnet.audit.service import AuditService, actor_of
from carnet.caller import Kind, RequestContext, Visibility
from carnet.db.instants import stamp
from carnet.fhir.access import PendingEvent
from carnet.fhir.errors import FhirError, Issue
from carnet.fhir.repository import StoredResource, Unit
from carnet.policy.authors import authorship, record_authors
from carnet.policy.models import access_alert, access_care
from carnet.policy.service import Decision, PolicyDecisionPoint, rule_action

# Interactions on no single type (system history, bulk export and import) are for callers with
# system scopes only.
SYSTEM_ACTIONS = frozenset({"export", "export-file", "import"})
# Interactions on one identified item whose refusal belongs in its owner's access history.
ITEM_ACTIONS = frozenset({"read", "vread", "history", "update", "delete"})


def refusal(decision: Decision, res_type: str | None, res_id: str | None) -> FhirError:
    """403 with the reason, or for an item hidden from the caller the very 404 of a missing one."""
    if decision.status == 404:
        what = f"{res_type}/{res_id}" if res_type and res_id else "the resource"
        return FhirError(404, [Issue("not-found", f"{what} is not known")], rule=decision.rule)
    return FhirError(
        403, [Issue("forbidden", decision.reason or "access refused")], rule=decision.rule
    )


class PolicyAccess:
    """The policy every FHIR session decides and records with: one ``PolicyGuard`` each."""

    def __init__(self, audit: AuditService, pdp: PolicyDecisionPoint) -> None:
        self.audit = audit
        self.pdp = pdp

    def open(self) -> PolicyGuard:
        """The guard of one session (a request, a Bundle, an import batch)."""
        return PolicyGuard(self.audit, self.pdp)


class PolicyGuard:
    """Decides with the PDP, records with the audit log (in the session's transaction); holds
    what one session decided, noted and refused."""

    def __init__(self, audit: AuditService, pdp: PolicyDecisionPoint) -> None:
        self.audit = audit
        self.pdp = pdp
        self.rule: str | None = None  # the rule of the last decision, named in the event
        # Decisions made in the session: the facts they rest on do not change inside it, and a
        # Bundle touches one patient many times.
        self.decided: dict[tuple[object, ...], Decision] = {}
        self.noted: set[tuple[str, str]] = set()  # care relationships seen in this session
        # The record of each item refused in the session, for ``record_failure`` (which runs
        # after the unit rolled back) to put the refusal in that record's history.
        self.refused_owner: dict[tuple[str, str], str] = {}

    def check(
        self, unit: Unit, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> str | None:
        """Refuse (FhirError) or return the rule that allows the attempt."""
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
            decided = self.decided
            cached = decided.get(key)
            if cached is None:
                cached = decided[key] = self.pdp.may_attempt(unit.conn, principal, action, res_type)
            decision = cached
        if not decision.allowed:
            if res_type is not None and res_id is not None and action in ITEM_ACTIONS:
                try:
                    refused = unit.current(res_type, res_id)  # whose item, for their history
                except FhirError:  # an erased record: the caller still gets the same refusal
                    refused = None
                if refused is not None:
                    self._note_owner(unit, res_type, res_id, refused.patient_id)
            raise refusal(decision, res_type, res_id)
        self.rule = decision.rule
        return decision.rule

    def check_resource(
        self, unit: Unit, ctx: RequestContext, action: str, stored: StoredResource
    ) -> None:
        principal = ctx.principal
        system = principal.kind in (Kind.OPERATOR, Kind.BACKEND)  # system scopes hide nothing
        flags = frozenset() if system else self.pdp.flags(unit.conn, stored.res_type, stored.res_id)
        author = None if system else authorship(unit.conn, stored.res_type, stored.res_id)
        key = (principal, action, stored.res_type, stored.patient_id, flags, author)
        decided = self.decided
        decision = decided.get(key)
        if decision is None:
            decision = self.pdp.decide(
                unit.conn, principal, action, stored.res_type, stored.patient_id, flags, author
            )
            decided[key] = decision
        if decision.allowed and self.pdp.granular(principal, action).get(stored.res_type):
            unit.flush()  # the item as written in this unit is what its index says
            older = action in ("vread", "history") and not self._current(unit, stored)
            if older or not self.pdp.within_granular(
                unit.conn, principal, action, stored.res_type, stored.res_id
            ):
                # outside the granular scope: a read answers as for a hidden item
                status = 404 if rule_action(action) == "read" else 403
                decision = Decision(False, "smart-scope-query", status, "no scope grants this item")
        if not decision.allowed:
            if action in ITEM_ACTIONS:  # a refused create is of no one's item yet
                self._note_owner(unit, stored.res_type, stored.res_id, stored.patient_id)
            raise refusal(decision, stored.res_type, stored.res_id)
        self.rule = decision.rule

    @staticmethod
    def _current(unit: Unit, stored: StoredResource) -> bool:
        """Whether ``stored`` is its item's current version: only that one has a search index, so
        a granular scope cannot say whether an older version was within it (it is not covered)."""
        try:
            current = unit.current(stored.res_type, stored.res_id)
        except FhirError:
            return False
        return current is not None and current.version == stored.version

    def visibility(self, unit: Unit, ctx: RequestContext, action: str) -> Visibility | None:
        vis = self.pdp.visibility(unit.conn, ctx.principal, action)
        self.rule = vis.rules
        return None if vis.unrestricted else vis

    def record(
        self,
        unit: Unit,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        touched: list[StoredResource],
    ) -> str | None:
        """What a success entails besides its event (authors, care relationships); returns the
        rule the event names."""
        principal = ctx.principal
        if action == "create":
            record_authors(unit.conn, principal, [(s.res_type, s.res_id) for s in touched])
        system = principal.kind in (Kind.OPERATOR, Kind.BACKEND)
        if system and action in ("create", "update"):
            # An encounter or admission recorded by the care organisation's system is a care
            # relationship; one written by a professional in their own name is only a deposit.
            noted = self.noted
            for stored in touched:
                if not stored.patient_id or stored.res_type != "Encounter" or not stored.body:
                    continue
                for rpps in encounter_rpps(unit, stored):
                    if (stored.patient_id, rpps) in noted:
                        continue
                    noted.add((stored.patient_id, rpps))
                    if note_care(unit.conn, stored.patient_id, rpps, "encounter"):
                        self._care_begun(unit, ctx, stored, rpps)
        return ctx.rule if self.rule is None else self.rule

    def commit(self, conn: Connection, events: Sequence[PendingEvent]) -> None:
        """The session's events, into the audit log in its unit, just before the unit commits."""
        self.audit.append_pending(conn, events)

    def _care_begun(
        self, unit: Unit, ctx: RequestContext, encounter: StoredResource, rpps: str
    ) -> None:
        """A new care relationship: an event in the patient's history and an operator alert."""
        patient_id = encounter.patient_id
        assert patient_id is not None
        touched = [Touched(encounter.res_type, encounter.res_id, encounter.version, patient_id)]
        who = actor_of(replace(ctx, rule=f"care-encounter rpps:{rpps}"))
        self.audit.store.append(
            unit.conn, [build_event(who, "care-begin", "Encounter", 200, touched)]
        )
        self.audit.appended(1)
        unit.conn.execute(
            insert(access_alert).values(
                id=str(uuid.uuid4()),
                kind="care-relationship",
                patient_id=patient_id,
                subject=rpps,
                created_at=stamp(),
                acknowledged=False,
            )
        )

    def _note_owner(self, unit: Unit, res_type: str, res_id: str, patient_id: str | None) -> None:
        if patient_id is not None:
            self.refused_owner[(res_type, res_id)] = patient_id

    def record_failure(
        self,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        res_id: str | None,
        status: int,
        unit: Unit | None = None,
    ) -> None:
        owners = self.refused_owner if unit is not None else {}
        if res_type is not None and res_id is not None:
            owner = owners.get((res_type, res_id))
            refused = {(res_type, res_id): owner} if owner is not None else {}
        else:  # a whole Bundle failed: every item refused in it, whichever entry failed it
            refused = dict(owners)
        if not refused:
            self.audit.record_failure(ctx, action, res_type, res_id, status)
            return
        # The refusal names the items in their owners' slices: it is in their access history.
        touched = [Touched(t, i, None, owner) for (t, i), owner in refused.items()]
        event = build_event(actor_of(ctx), action, res_type, status, touched)
        self.audit.append_outcome(action, [event])


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


def note_care(conn: Connection, patient_id: str, rpps: str, source: str) -> bool:
    """Record a care relationship if there is none yet (an encounter, a declaration); whether it
    is new."""
    c = access_care.c
    exists = conn.execute(select(c.rpps).where(c.patient_id == patient_id, c.rpps == rpps)).first()
    if exists is None:
        conn.execute(
            insert(access_care).values(
                patient_id=patient_id,
                rpps=rpps,
                source=source,
                medecin_traitant=False,
                created_at=stamp(),
            )
        )
        return True
    return False
