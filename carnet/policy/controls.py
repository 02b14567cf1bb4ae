"""The patient's controls: masks, blocks, care relationships, preferences; break-glass; alerts.

A person acts on their own record or on the record of someone they represent; a professional sets
``INVISIBLE_PATIENT`` on what they deposited (a result to be announced in consultation) and opens a
record in an emergency. Every change is one audit event in the patient's part of the log, so it is
in their access history; break-glass also raises an alert for the operator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from carnet.audit.events import Touched, build_event
from carnet.audit.service import AuditService, actor_of
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.db.instants import stamp, utc_now
from carnet.fhir.errors import FhirError
from carnet.fhir.repository import StoredResource
from carnet.fhir.service import FhirService
from carnet.fhir.session import FhirSession
from carnet.policy.audience import Audience, audience
from carnet.policy.authors import authorship
from carnet.policy.enforce import note_care
from carnet.policy.models import (
    access_alert,
    access_block,
    access_break_glass,
    access_care,
    access_preference,
    access_research_optout,
    access_visibility,
)
from carnet.policy.service import (
    HIDDEN_UNDER,
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    PolicyDecisionPoint,
)

BREAK_GLASS_REASONS = ("unconscious", "life-threatening", "unable-to-consent", "other-emergency")
RPPS_LENGTH = (11, 12)  # RPPS numbers have 11 digits; ADELI-derived ids carry a prefix digit


class ControlError(Exception):
    """A refused control: ``status`` 400 (bad input), 403 (not allowed) or 404 (unknown)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Controls:
    patient_id: str
    masks: list[dict[str, str]]
    blocked: list[str]
    care: list[dict[str, Any]]
    emergency_opposition: bool
    research_optout: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "patient": self.patient_id,
            "masks": self.masks,
            "blocked": self.blocked,
            "care": self.care,
            "emergencyOpposition": self.emergency_opposition,
            "researchOptOut": self.research_optout,
        }


def _check_rpps(rpps: str) -> str:
    if not rpps.isdigit() or len(rpps) not in RPPS_LENGTH:
        raise ControlError(400, "an RPPS number has 11 digits")
    return rpps


class ControlsService:
    """The patient's controls and emergency access, each change audited."""

    def __init__(
        self,
        engine: Engine,
        fhir: FhirService,
        audit: AuditService,
        pdp: PolicyDecisionPoint,
        *,
        break_glass_minutes: float,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.fhir = fhir
        self.audit = audit
        self.pdp = pdp
        self.break_glass_minutes = break_glass_minutes
        self.now = now or (utc_now)

    # -- who acts for whom ---------------------------------------------------------------------

    def acting_for(self, ctx: RequestContext, patient_id: str | None) -> tuple[str, bool]:
        """The patient ``ctx``'s person acts for (own record by default) and whether as
        representative.

        404 when the person neither is nor represents that patient: no hint that it exists; that
        refusal is audited in the patient's part of the log.
        """
        principal = ctx.principal
        if principal.kind is not Kind.PERSON or not principal.patient_id:
            raise ControlError(403, "only the patient or a legal representative sets controls")
        if patient_id in (None, "", principal.patient_id):
            return principal.patient_id, False
        with self.engine.connect() as conn:
            represented = self.pdp.represented(conn, principal.patient_id)
        if patient_id not in represented:
            self._audit(ctx, "controls", str(patient_id), [], "not-represented", 404)
            raise ControlError(404, "no such record among those you act for")
        return str(patient_id), True

    def may_see_history(self, principal: Principal, patient_id: str) -> bool:
        """The patient, their representatives and operators see a record's access history."""
        if principal.kind is Kind.OPERATOR:
            return True
        if principal.kind is not Kind.PERSON or not principal.patient_id:
            return False
        if patient_id == principal.patient_id:
            return True
        with self.engine.connect() as conn:
            return patient_id in self.pdp.represented(conn, principal.patient_id)

    def history_hidden(self, principal: Principal, patient_id: str) -> frozenset[str]:
        """The record's items (``Type/id``) its access history must not show this viewer: the
        flags that hide them from the viewer under the policy (the patient: INVISIBLE_PATIENT;
        a representative: that and INVISIBLE_REPRESENTANTS_LEGAUX; operators: none)."""
        if principal.kind is Kind.OPERATOR:
            return frozenset()
        relationship = "self" if principal.patient_id == patient_id else "represented"
        flags = HIDDEN_UNDER[relationship]
        v = access_visibility.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(v.res_type, v.res_id).where(
                    v.patient_id == patient_id, v.flag.in_(sorted(flags))
                )
            ).all()
        return frozenset(f"{r.res_type}/{r.res_id}" for r in rows)

    # -- reading ---------------------------------------------------------------------------------

    def controls(self, ctx: RequestContext, patient_id: str | None) -> Controls:
        pid, as_representative = self.acting_for(ctx, patient_id)
        v, b, c, p = access_visibility.c, access_block.c, access_care.c, access_preference.c
        with self.engine.connect() as conn:
            flags = [MASQUE_PS] + ([] if as_representative else [INVISIBLE_REPRESENTANTS_LEGAUX])
            masks = [
                {"resource": f"{r.res_type}/{r.res_id}", "flag": r.flag}
                for r in conn.execute(
                    select(v.res_type, v.res_id, v.flag)
                    .where(v.patient_id == pid, v.flag.in_(flags))
                    .order_by(v.created_at)
                )
            ]
            blocked = list(
                conn.execute(select(b.rpps).where(b.patient_id == pid).order_by(b.rpps)).scalars()
            )
            care = [
                {"rpps": r.rpps, "source": r.source, "medecinTraitant": bool(r.medecin_traitant)}
                for r in conn.execute(select(access_care).where(c.patient_id == pid))
            ]
            pref = conn.execute(select(access_preference).where(p.patient_id == pid)).first()
        self._audit(ctx, "controls-read", pid, [])
        return Controls(
            pid,
            masks,
            blocked,
            care,
            bool(pref.emergency_opposition) if pref else False,
            bool(pref.research_optout) if pref else False,
        )

    # -- masks -----------------------------------------------------------------------------------

    def set_mask(self, ctx: RequestContext, reference: str, flag: str, *, on: bool) -> None:
        """Mask or unmask one item. Persons: MASQUE_PS (and a minor's INVISIBLE_REPRESENTANTS_LEGAUX
        on their own record); professionals: INVISIBLE_PATIENT on items they may write."""
        res_type, _, res_id = reference.partition("/")
        if not res_type or not res_id or "/" in res_id:
            raise ControlError(400, "resource must be Type/id")
        principal = ctx.principal
        if principal.kind is Kind.PERSON:
            if flag not in (MASQUE_PS, INVISIBLE_REPRESENTANTS_LEGAUX):
                raise ControlError(
                    400, f"a person sets {MASQUE_PS} or {INVISIBLE_REPRESENTANTS_LEGAUX}"
                )
            stored = self._readable(ctx, res_type, res_id)
            pid, as_representative = self.acting_for(ctx, stored.patient_id)
            if flag == INVISIBLE_REPRESENTANTS_LEGAUX and as_representative:
                raise ControlError(403, "only the person themself hides items from representatives")
        elif principal.kind is Kind.PROFESSIONAL:
            if flag != INVISIBLE_PATIENT:
                raise ControlError(400, f"a professional sets {INVISIBLE_PATIENT} only")
            if res_type == "Patient":  # it would shut the person out of their whole record
                raise ControlError(400, f"{INVISIBLE_PATIENT} is set on items, not on a Patient")
            stored = self._readable(ctx, res_type, res_id)
            with self.engine.connect() as conn:
                author = authorship(conn, res_type, res_id)
                # its author, or a professional with a care relationship (an update right)
                decision = self.pdp.decide(
                    conn, principal, "update", res_type, stored.patient_id, frozenset(), author
                )
            if not decision.allowed or not stored.patient_id:
                raise ControlError(403, "you may not change the visibility of this item")
            if author is not None and author.patient_side:
                # the patient's own entries are never hidden from them
                raise ControlError(403, f"{INVISIBLE_PATIENT} is set on items written by care")
            pid = stored.patient_id
        else:
            raise ControlError(403, "visibility flags are set by patients and professionals")
        v = access_visibility.c
        with writing(self.engine) as conn:
            conn.execute(
                delete(access_visibility).where(
                    v.res_type == res_type, v.res_id == res_id, v.flag == flag
                )
            )
            if on:
                conn.execute(
                    insert(access_visibility).values(
                        res_type=res_type,
                        res_id=res_id,
                        flag=flag,
                        patient_id=pid,
                        created_at=stamp(),
                    )
                )
            rule = f"{'masks-professional' if principal.kind is Kind.PROFESSIONAL else 'masks-person'} flag:{flag}"
            self._audit_in(conn, ctx, "mask" if on else "unmask", pid, [(res_type, res_id)], rule)

    def hide_from_patient_in(self, session: FhirSession, stored: StoredResource) -> None:
        """Flag ``INVISIBLE_PATIENT`` on an item the session's professional has just deposited,
        in the session's own transaction: the item is never stored without its flag, so the
        patient cannot see a result before it is announced to them (set_mask, a transaction of
        its own after the deposit, would leave that instant open)."""
        principal = session.ctx.principal
        if principal.kind is not Kind.PROFESSIONAL:
            raise ControlError(403, f"a professional sets {INVISIBLE_PATIENT} only")
        if stored.res_type == "Patient" or not stored.patient_id:
            raise ControlError(400, f"{INVISIBLE_PATIENT} is set on items of a record")
        conn = session.unit.conn
        conn.execute(
            insert(access_visibility).values(
                res_type=stored.res_type,
                res_id=stored.res_id,
                flag=INVISIBLE_PATIENT,
                patient_id=stored.patient_id,
                created_at=stamp(),
            )
        )
        self._audit_in(
            conn,
            session.ctx,
            "mask",
            stored.patient_id,
            [(stored.res_type, stored.res_id)],
            f"masks-professional flag:{INVISIBLE_PATIENT}",
        )

    def _readable(self, ctx: RequestContext, res_type: str, res_id: str) -> StoredResource:
        """The resource as the caller may read it (the PDP decides; 404 if hidden or unknown)."""
        try:
            return self.fhir.read(res_type, res_id, ctx=ctx)
        except FhirError as err:
            raise ControlError(
                404 if err.status in (403, 404, 410) else err.status, "no such item"
            ) from None

    # -- blocks, care relationships, preferences ----------------------------------------------

    def set_block(
        self, ctx: RequestContext, patient_id: str | None, rpps: str, *, on: bool
    ) -> None:
        pid, rep = self.acting_for(ctx, patient_id)
        rpps = _check_rpps(rpps)
        b = access_block.c
        with writing(self.engine) as conn:
            conn.execute(delete(access_block).where(b.patient_id == pid, b.rpps == rpps))
            if on:
                conn.execute(
                    insert(access_block).values(patient_id=pid, rpps=rpps, created_at=stamp())
                )
            self._audit_in(
                conn, ctx, "block" if on else "unblock", pid, [], _rule(rep, f"rpps:{rpps}")
            )

    def declare_care(
        self, ctx: RequestContext, patient_id: str | None, rpps: str, *, medecin_traitant: bool
    ) -> None:
        """Declare a professional as caring for the patient (optionally their médecin traitant,
        who replaces any previous one)."""
        pid, rep = self.acting_for(ctx, patient_id)
        rpps = _check_rpps(rpps)
        c = access_care.c
        with writing(self.engine) as conn:
            if medecin_traitant:
                conn.execute(
                    update(access_care).where(c.patient_id == pid).values(medecin_traitant=False)
                )
            note_care(conn, pid, rpps, "declared")
            conn.execute(
                update(access_care)
                .where(c.patient_id == pid, c.rpps == rpps)
                .values(medecin_traitant=medecin_traitant, source="declared")
            )
            self._audit_in(conn, ctx, "care-declare", pid, [], _rule(rep, f"rpps:{rpps}"))

    def end_care(self, ctx: RequestContext, patient_id: str | None, rpps: str) -> None:
        pid, rep = self.acting_for(ctx, patient_id)
        c = access_care.c
        with writing(self.engine) as conn:
            conn.execute(
                delete(access_care).where(c.patient_id == pid, c.rpps == _check_rpps(rpps))
            )
            self._audit_in(conn, ctx, "care-end", pid, [], _rule(rep, f"rpps:{rpps}"))

    def set_preferences(
        self,
        ctx: RequestContext,
        patient_id: str | None,
        *,
        emergency_opposition: bool | None = None,
        research_optout: bool | None = None,
    ) -> None:
        pid, rep = self.acting_for(ctx, patient_id)
        p = access_preference.c
        with writing(self.engine) as conn:
            row = conn.execute(select(access_preference).where(p.patient_id == pid)).first()
            values = {
                "emergency_opposition": bool(row.emergency_opposition) if row else False,
                "research_optout": bool(row.research_optout) if row else False,
                "updated_at": stamp(),
            }
            if emergency_opposition is not None:
                values["emergency_opposition"] = emergency_opposition
            if research_optout is not None:
                values["research_optout"] = research_optout
            was_out = bool(row.research_optout) if row else False
            if values["research_optout"] != was_out:  # the hub honours it as it stood then
                conn.execute(
                    insert(access_research_optout).values(
                        patient_id=pid,
                        changed_at=values["updated_at"],
                        opted_out=values["research_optout"],
                    )
                )
            if row is None:
                conn.execute(insert(access_preference).values(patient_id=pid, **values))
            else:
                conn.execute(update(access_preference).where(p.patient_id == pid).values(**values))
            self._audit_in(conn, ctx, "preferences", pid, [], _rule(rep, ""))

    def research_opted_out(self, patient_id: str) -> bool:
        """Whether the patient refuses the secondary use of their data now (from its history)."""
        return self.opted_out(patient_id)

    def opted_out(self, patient_id: str, at: datetime | None = None) -> bool:
        """Whether the patient had refused the secondary use of their data at ``at`` (now by
        default): the research hub asks this at each extraction (docs/record.md)."""
        with self.engine.connect() as conn:
            return opted_out(conn, patient_id, at)

    def opted_out_among(self, patient_ids: Collection[str], at: datetime) -> set[str]:
        """Those of ``patient_ids`` who had refused secondary use at ``at``: the hub asks this
        once per batch of people, at its extraction's instant (docs/record.md)."""
        with self.engine.connect() as conn:
            return opted_out_among(conn, patient_ids, at)

    # -- the mask preview --------------------------------------------------------------------------

    def audience(
        self, ctx: RequestContext, reference: str, profession_of: Callable[[str], str | None]
    ) -> Audience:
        """The professionals who read an item of the caller's record now, and who would still
        read it if masked (the médecin traitant does), as the policy decides; audited."""
        res_type, _, res_id = reference.partition("/")
        if not res_type or not res_id or "/" in res_id:
            raise ControlError(400, "resource must be Type/id")
        stored = self._readable(ctx, res_type, res_id)
        pid, _ = self.acting_for(ctx, stored.patient_id)
        with self.engine.connect() as conn:
            seen = audience(conn, self.pdp, pid, res_type, res_id, profession_of)
        self._audit(ctx, "mask-preview", pid, [(res_type, res_id)])
        return seen

    # -- break-glass -------------------------------------------------------------------------------

    def break_glass(self, ctx: RequestContext, patient_id: str, reason: str) -> dict[str, str]:
        """Emergency access for a professional: time-limited, audited, alerted, shown to the
        patient; refused when the patient opposed emergency access or blocked this professional."""
        principal = ctx.principal
        if principal.kind is not Kind.PROFESSIONAL or not principal.rpps:
            raise ControlError(403, "break-glass is for health professionals")
        if reason not in BREAK_GLASS_REASONS:
            raise ControlError(400, f"reason must be one of {', '.join(BREAK_GLASS_REASONS)}")
        moment = self.now()
        expires = moment + timedelta(minutes=self.break_glass_minutes)
        emergency = replace(ctx, purpose="emergency")
        with self.fhir.session(emergency, "break-glass", "Patient", patient_id) as session:
            patient = session.current("Patient", patient_id)  # the grant is checked below
        if patient is None or patient.deleted:
            raise ControlError(404, "no such patient")
        grant_id = str(uuid.uuid4())
        with writing(self.engine) as conn:
            refused = self._emergency_refusal(conn, patient_id, principal.rpps)
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
                self._audit_in(
                    conn,
                    emergency,
                    "break-glass",
                    patient_id,
                    [],
                    f"break-glass-read reason:{reason}",
                )
        if refused is not None:  # recorded in a transaction of its own: it changes nothing else
            rule, message = refused
            self._audit(
                emergency, "break-glass-refused", patient_id, [], f"{rule} reason:{reason}", 403
            )
            raise ControlError(403, message)
        return {"id": grant_id, "patient": patient_id, "expires": stamp(expires)}

    @staticmethod
    def _emergency_refusal(conn: Connection, patient_id: str, rpps: str) -> tuple[str, str] | None:
        """Why an emergency access is refused (the rule, the caller's message), or None. A block
        names this professional, so it is told before a general opposition."""
        p, b = access_preference.c, access_block.c
        blocked = conn.execute(
            select(b.rpps).where(b.patient_id == patient_id, b.rpps == rpps)
        ).first()
        if blocked is not None:
            return "pro-blocked", "this patient has blocked your access to their record"
        opposed = conn.execute(
            select(p.emergency_opposition).where(p.patient_id == patient_id)
        ).first()
        if opposed is not None and opposed[0]:
            return "emergency-opposition", "this patient refused emergency access"
        return None

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

    # -- audit -----------------------------------------------------------------------------------

    def refused(self, ctx: RequestContext, action: str, status: int) -> None:
        """Record a refused control (bad input, not allowed, unknown) in a transaction of its own."""
        self.audit.record_failure(replace(ctx, rule="controls-refused"), action, None, None, status)

    def _audit(
        self,
        ctx: RequestContext,
        action: str,
        patient_id: str,
        refs: list[tuple[str, str]],
        rule: str | None = None,
        status: int = 200,
    ) -> None:
        with writing(self.engine) as conn:
            self._audit_in(conn, ctx, action, patient_id, refs, rule, status)

    def _audit_in(
        self,
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
        self.audit.store.append(conn, [event])
        self.audit.appended(1)


def _rule(as_representative: bool, detail: str) -> str:
    """The audit's rule field for a control: who decided (the person or their representative)."""
    who = "controls-represented" if as_representative else "controls-self"
    return f"{who} {detail}".strip()


def opted_out(conn: Connection, patient_id: str, at: datetime | None = None) -> bool:
    """Whether ``patient_id`` had opted out of research at ``at`` (now by default): the last
    change of the opt-out at or before that instant (``access_research_optout``)."""
    return patient_id in opted_out_among(conn, [patient_id], at or utc_now())


def opted_out_among(conn: Connection, patient_ids: Collection[str], at: datetime) -> set[str]:
    """Those of ``patient_ids`` whose last opt-out change at or before ``at`` opted them out
    (one query per 500 people; the history is short per person)."""
    o = access_research_optout.c
    wanted, moment = sorted(set(patient_ids)), stamp(at)
    last: dict[str, bool] = {}
    for start in range(0, len(wanted), 500):
        query = (
            select(o.patient_id, o.opted_out)
            .where(o.patient_id.in_(wanted[start : start + 500]), o.changed_at <= moment)
            .order_by(o.patient_id, o.changed_at)
        )
        for row in conn.execute(query):
            last[row.patient_id] = bool(row.opted_out)  # later changes overwrite earlier ones
    return {patient_id for patient_id, out in last.items() if out}
