"""The patient's controls: masks, blocks, care relationships, preferences.

A person acts on their own record or on the record of someone they represent; a professional sets
``INVISIBLE_PATIENT`` on what they deposited (a result to be announced in consultation). Every change is one audit event in the patient's part of the log, so it is
in their access history. Emergency access lives in break_glass.py, the research opt-out's
history (read by the hub) in research_optout.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from carnet.audit.service import AuditService
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.db.instants import stamp
from carnet.fhir.errors import FhirError
from carnet.fhir.repository import StoredResource
from carnet.fhir.service import FhirService
from carnet.fhir.session import FhirSession
from carnet.policy.audience import Audience, audience
from carnet.policy.authors import authorship
from carnet.policy.control_events import ControlError, audit_control, audit_control_in
from carnet.policy.enforce import note_care
from carnet.policy.models import (
    access_block,
    access_care,
    access_preference,
    access_visibility,
)
from carnet.policy.research_optout import record_change
from carnet.policy.service import (
    HIDDEN_UNDER,
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    PolicyDecisionPoint,
)

RPPS_LENGTH = (11, 12)  # RPPS numbers have 11 digits; ADELI-derived ids carry a prefix digit


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
    ) -> None:
        self.engine = engine
        self.fhir = fhir
        self.audit = audit
        self.pdp = pdp

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
            audit_control(
                self.audit,
                self.engine,
                ctx,
                "controls",
                str(patient_id),
                [],
                "not-represented",
                404,
            )
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
        audit_control(self.audit, self.engine, ctx, "controls-read", pid, [])
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
            audit_control_in(
                self.audit, conn, ctx, "mask" if on else "unmask", pid, [(res_type, res_id)], rule
            )

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
        audit_control_in(
            self.audit,
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
            audit_control_in(
                self.audit,
                conn,
                ctx,
                "block" if on else "unblock",
                pid,
                [],
                _rule(rep, f"rpps:{rpps}"),
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
            audit_control_in(
                self.audit, conn, ctx, "care-declare", pid, [], _rule(rep, f"rpps:{rpps}")
            )

    def end_care(self, ctx: RequestContext, patient_id: str | None, rpps: str) -> None:
        pid, rep = self.acting_for(ctx, patient_id)
        c = access_care.c
        with writing(self.engine) as conn:
            conn.execute(
                delete(access_care).where(c.patient_id == pid, c.rpps == _check_rpps(rpps))
            )
            audit_control_in(self.audit, conn, ctx, "care-end", pid, [], _rule(rep, f"rpps:{rpps}"))

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
            was_opposed = bool(row.emergency_opposition) if row else False
            was_out = bool(row.research_optout) if row else False
            now_out = was_out if research_optout is None else research_optout
            values = {
                "emergency_opposition": (
                    was_opposed if emergency_opposition is None else emergency_opposition
                ),
                "research_optout": now_out,
                "updated_at": stamp(),
            }
            if now_out != was_out:  # the hub honours it as it stood then
                record_change(conn, pid, str(values["updated_at"]), opted_out=now_out)
            if row is None:
                conn.execute(insert(access_preference).values(patient_id=pid, **values))
            else:
                conn.execute(update(access_preference).where(p.patient_id == pid).values(**values))
            audit_control_in(self.audit, conn, ctx, "preferences", pid, [], _rule(rep, ""))

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
        audit_control(self.audit, self.engine, ctx, "mask-preview", pid, [(res_type, res_id)])
        return seen

    # -- audit -----------------------------------------------------------------------------------

    def refused(self, ctx: RequestContext, action: str, status: int) -> None:
        """Record a refused control (bad input, not allowed, unknown) in a transaction of its own."""
        self.audit.record_failure(replace(ctx, rule="controls-refused"), action, None, None, status)


def _rule(as_representative: bool, detail: str) -> str:
    """The audit's rule field for a control: who decided (the person or their representative)."""
    who = "controls-represented" if as_representative else "controls-self"
    return f"{who} {detail}".strip()
