"""Data permits (EHDS art. 67-68): the application, its review and its life.

States: draft -> submitted -> under_review -> approved (conditions, expiry) | rejected;
approved -> active (the applicant accepts the conditions) -> expired (at the expiry) | revoked.
A reviewer decides, never on an application they made or whose team they are in. The three-month
clock of art. 68 runs from submission; the register shows it. Every step, allowed or refused, is
one event in the audit log (the permit's id, the caller, the step, the outcome). What an active
permit's extraction takes and the record of its extracts: extracts.py (``PermitExtracts``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from carnet.audit.events import Touched, build_event
from carnet.audit.service import AuditService, actor_of
from carnet.caller import RequestContext
from carnet.db.engine import writing
from carnet.db.instants import utc_now
from carnet.form_submission import record_id
from carnet.hub.application import Application
from carnet.hub.dates import add_months
from carnet.hub.errors import HubError
from carnet.hub.models import hub_permit
from carnet.hub.roles import RESEARCHER, REVIEWER, Roles

DRAFT, SUBMITTED, UNDER_REVIEW = "draft", "submitted", "under_review"
APPROVED, REJECTED, ACTIVE, EXPIRED, REVOKED = (
    "approved",
    "rejected",
    "active",
    "expired",
    "revoked",
)
DECISION_MONTHS = 3  # EHDS art. 68(5): a decision within three months of the application
RESULTS_MONTHS = 18  # EHDS art. 61: results made public within 18 months of the end of processing
AUDIT_TYPE = "ResearchPermit"


def is_plain_https_url(url: str) -> bool:
    """Whether ``url`` is an https address with a host and nothing a link or a header would
    misread: no space, quote, angle bracket or control character (the public register shows it)."""
    if len(url) > 500 or any(c.isspace() or c in '"<>\\`' or ord(c) < 32 for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and url.startswith("https://")


# step -> (states it leaves, state it reaches, who takes it)
STEPS: dict[str, tuple[frozenset[str], str, str]] = {
    "submit": (frozenset({DRAFT}), SUBMITTED, "applicant"),
    "review": (frozenset({SUBMITTED}), UNDER_REVIEW, "reviewer"),
    "approve": (frozenset({UNDER_REVIEW}), APPROVED, "reviewer"),
    "reject": (frozenset({SUBMITTED, UNDER_REVIEW}), REJECTED, "reviewer"),
    "activate": (frozenset({APPROVED}), ACTIVE, "applicant"),
    "revoke": (frozenset({APPROVED, ACTIVE}), REVOKED, "reviewer"),
}


@dataclass(frozen=True)
class Permit:
    """A permit as stored, with its clocks."""

    permit_id: str
    project_id: str
    applicant: str
    state: str
    application: Application
    conditions: str | None
    decided_by: str | None
    created_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    activated_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    results_url: str | None
    results_published_at: datetime | None

    @property
    def members(self) -> frozenset[str]:
        return frozenset({self.applicant, *self.application.team})

    @property
    def decision_due(self) -> datetime | None:
        """The end of the three-month clock (art. 68), from submission."""
        return add_months(self.submitted_at, DECISION_MONTHS) if self.submitted_at else None

    @property
    def results_due(self) -> datetime | None:
        """When results must be public (art. 61): 18 months after processing ends."""
        end = self.ended_at or self.expires_at
        return add_months(end, RESULTS_MONTHS) if end and self.activated_at else None

    def clock(self, now: datetime) -> dict[str, Any]:
        """The three-month clock and the results reminder as the register shows them."""
        due = self.decision_due
        decided = self.decided_at is not None
        results_due = self.results_due
        return {
            "decisionDue": due.date().isoformat() if due else None,
            "decisionDaysLeft": None if due is None or decided else (due - now).days,
            "decisionOverdue": bool(due and not decided and now > due),
            "resultsDue": results_due.date().isoformat() if results_due else None,
            "resultsReminder": bool(
                results_due and self.results_published_at is None and now >= results_due
            ),
        }


def _permit(row: Row[Any]) -> Permit:
    m = row._mapping
    application = Application(
        title=m["title"],
        organisation=m["organisation"],
        purpose=m["purpose"],
        public_interest=m["public_interest"],
        legal_basis=m["legal_basis"],
        team=tuple(json.loads(m["team"])),
        datasets=tuple(json.loads(m["datasets"])),
        variables={t: tuple(c) for t, c in json.loads(m["variables"]).items()},
        population=m["population"],
        period_start=m["period_start"],
        period_end=m["period_end"],
        duration_months=m["duration_months"],
        deidentification=m["deidentification"],
        deidentification_reason=m["deidentification_reason"],
        dates=m["dates"],
        k_threshold=m["k_threshold"],
        disclosure_profile=m["disclosure_profile"],
    )
    return Permit(
        permit_id=m["permit_id"],
        project_id=m["project_id"],
        applicant=m["applicant"],
        state=m["state"],
        application=application,
        conditions=m["conditions"],
        decided_by=m["decided_by"],
        created_at=m["created_at"],
        submitted_at=m["submitted_at"],
        decided_at=m["decided_at"],
        activated_at=m["activated_at"],
        expires_at=m["expires_at"],
        ended_at=m["ended_at"],
        results_url=m["results_url"],
        results_published_at=m["results_published_at"],
    )


class PermitService:
    """Applications, decisions and the life of permits; the audit log records every step."""

    def __init__(
        self,
        engine: Engine,
        audit: AuditService,
        roles: Roles,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.roles = roles
        self.now = now

    # -- the audit ------------------------------------------------------------------------------

    def audit_in(self, conn: Connection, ctx: RequestContext, action: str, permit_id: str) -> None:
        """One allowed step on ``permit_id``, in the caller's transaction (extracts.py too)."""
        event = build_event(
            actor_of(replace(ctx, rule=f"hub {action}")),
            action,
            AUDIT_TYPE,
            200,
            [Touched(AUDIT_TYPE, permit_id, None, None)],
            moment=self.now(),
        )
        self.audit.store.append(conn, [event])
        self.audit.appended(1)

    def refuse(
        self, ctx: RequestContext, action: str, permit_id: str | None, status: int, message: str
    ) -> HubError:
        """Audit a refused action (its own transaction) and return the error to raise."""
        touched = [Touched(AUDIT_TYPE, permit_id, None, None)] if permit_id else []
        who = actor_of(replace(ctx, rule=f"hub {action} refused"))
        self.audit.append(
            [build_event(who, action, AUDIT_TYPE, status, touched, moment=self.now())]
        )
        return HubError(status, message)

    # -- applications ---------------------------------------------------------------------------

    def apply(
        self, ctx: RequestContext, application: Application, submission: str | None = None
    ) -> Permit:
        """A researcher's draft application; they and their team form the project. With the
        form's ``submission`` id, the same form sent again finds the draft the first send
        stored (one application, the replay audited as such)."""
        subject = ctx.principal.subject
        if not self.roles.holds(subject, RESEARCHER):
            raise self.refuse(
                ctx, "permit-apply", None, 403, "only a researcher applies for a permit"
            )
        permit_id = record_id(submission, "permit", subject)
        a = application.checked()
        stored = self._applied_before(ctx, permit_id)
        if stored is not None:
            return stored
        try:
            self._insert_application(ctx, permit_id, a)
        except IntegrityError:  # the same form, sent twice at once: the other send stored it
            stored = self._applied_before(ctx, permit_id)
            if stored is None:
                raise
            return stored
        return self.get(permit_id)

    def _applied_before(self, ctx: RequestContext, permit_id: str) -> Permit | None:
        """The caller's application already stored under ``permit_id`` (a form sent again,
        audited as ``permit-apply-again``), or None."""
        with self.engine.connect() as conn:
            applicant = conn.execute(
                select(hub_permit.c.applicant).where(hub_permit.c.permit_id == permit_id)
            ).scalar_one_or_none()
        if applicant is None:
            return None
        if applicant != ctx.principal.subject:  # never another's (the id includes the sender)
            raise self.refuse(ctx, "permit-apply", None, 409, "the application exists")
        with writing(self.engine) as conn:
            self.audit_in(conn, ctx, "permit-apply-again", permit_id)
        return self.get(permit_id)

    def _insert_application(self, ctx: RequestContext, permit_id: str, a: Application) -> None:
        subject, project_id = ctx.principal.subject, str(uuid.uuid4())
        with writing(self.engine) as conn:
            conn.execute(
                insert(hub_permit).values(
                    permit_id=permit_id,
                    project_id=project_id,
                    applicant=subject,
                    state=DRAFT,
                    title=a.title,
                    organisation=a.organisation,
                    purpose=a.purpose,
                    public_interest=a.public_interest,
                    legal_basis=a.legal_basis,
                    team=json.dumps(list(a.team)),
                    datasets=json.dumps(list(a.datasets)),
                    variables=json.dumps({t: list(c) for t, c in a.variables.items()}),
                    population=a.population,
                    period_start=a.period_start,
                    period_end=a.period_end,
                    duration_months=a.duration_months,
                    deidentification=a.deidentification,
                    deidentification_reason=a.deidentification_reason,
                    dates=a.dates,
                    k_threshold=a.k_threshold,
                    disclosure_profile=a.disclosure_profile,
                    created_at=self.now(),
                )
            )
            self.audit_in(conn, ctx, "permit-apply", permit_id)

    def get(self, permit_id: str) -> Permit:
        """A permit (expiry applied); HubError(404) if there is none."""
        self.expire_due()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(hub_permit).where(hub_permit.c.permit_id == permit_id)
            ).first()
        if row is None:
            raise HubError(404, "no such permit")
        return _permit(row)

    def aimed_at(self, ctx: RequestContext, action: str, permit_id: str) -> Permit:
        """The permit a step aims at. One that does not exist is a refused step like any other:
        404 and its audit event (every step, allowed or refused, is one); the id the caller
        made up is not recorded."""
        try:
            return self.get(permit_id)
        except HubError:
            raise self.refuse(ctx, action, None, 404, "no such permit") from None

    def view(self, ctx: RequestContext, permit_id: str) -> Permit:
        """A permit for its project's team, and for the reviewers once submitted (a draft is its
        project's own, as ``visible_to`` lists it); anyone else meets the same 404 as for a
        permit that does not exist (audited)."""
        permit = self.aimed_at(ctx, "permit-read", permit_id)
        if not self._sees(ctx.principal.subject, permit):
            raise self.refuse(ctx, "permit-read", permit_id, 404, "no such permit")
        return permit

    def _sees(self, subject: str, permit: Permit) -> bool:
        """Whether ``subject`` may see ``permit``: its project's team, and the reviewers once it
        is submitted (a draft is its project's own). Who may not see it meets the 404 of a
        permit that does not exist, on a read as on a step (a hidden item answers like a
        missing one)."""
        if subject in permit.members:
            return True
        return permit.state != DRAFT and self.roles.holds(subject, REVIEWER)

    def visible_to(self, ctx: RequestContext) -> list[Permit]:
        """A reviewer sees every application past draft; anyone else, their projects'."""
        self.expire_due()
        subject = ctx.principal.subject
        with self.engine.connect() as conn:
            rows = conn.execute(select(hub_permit).order_by(hub_permit.c.created_at)).all()
        permits = [_permit(r) for r in rows]
        if self.roles.holds(subject, REVIEWER):
            return [p for p in permits if p.state != DRAFT or subject in p.members]
        return [p for p in permits if subject in p.members]

    def all_permits(self) -> list[Permit]:
        """Every permit past draft, for the public register."""
        self.expire_due()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(hub_permit)
                .where(hub_permit.c.state != DRAFT)
                .order_by(hub_permit.c.submitted_at)
            ).all()
        return [_permit(r) for r in rows]

    # -- the state machine ----------------------------------------------------------------------

    def step(
        self,
        ctx: RequestContext,
        permit_id: str,
        step: str,
        *,
        conditions: str | None = None,
        valid_months: int | None = None,
    ) -> Permit:
        """Take one step of the state machine (STEPS), checking who takes it and from where."""
        if step not in STEPS:
            # a refused step too (audited), under one action name: the words sent are not kept
            raise self.refuse(ctx, "permit-step", None, 400, "unknown step")
        sources, target, taker = STEPS[step]
        action = f"permit-{step}"
        permit = self.aimed_at(ctx, action, permit_id)
        subject = ctx.principal.subject
        # Who may not see the permit (a reviewer included, on a draft) meets its 404 before
        # any other refusal: a 409 or a 403 would tell that it exists.
        if not self._sees(subject, permit):
            raise self.refuse(ctx, action, permit_id, 404, "no such permit")
        if taker == "applicant" and subject != permit.applicant:
            raise self.refuse(ctx, action, permit_id, 403, "only the applicant takes this step")
        if taker == "reviewer":
            if not self.roles.holds(subject, REVIEWER):
                raise self.refuse(ctx, action, permit_id, 403, "only a reviewer decides")
            if subject in permit.members:
                raise self.refuse(
                    ctx, action, permit_id, 403, "a reviewer never decides on their own application"
                )
        if permit.state not in sources:
            raise self.refuse(ctx, action, permit_id, 409, f"a permit {permit.state} cannot {step}")
        now = self.now()
        values: dict[str, Any] = {"state": target}
        if step == "submit":
            values["submitted_at"] = now
        elif step in ("approve", "reject"):
            values.update(decided_at=now, decided_by=subject, conditions=conditions)
            if step == "approve":
                months = valid_months or permit.application.duration_months
                if not 1 <= months <= 60:
                    raise HubError(400, "validMonths is between 1 and 60")
                values["expires_at"] = add_months(now, months)
        elif step == "activate":
            values["activated_at"] = now
        elif step == "revoke":
            values["ended_at"] = now
        with writing(self.engine) as conn:
            done = conn.execute(
                update(hub_permit)
                .where(hub_permit.c.permit_id == permit_id, hub_permit.c.state == permit.state)
                .values(**values)
            ).rowcount
            if done != 1:
                raise HubError(409, "the permit changed meanwhile")
            self.audit_in(conn, ctx, action, permit_id)
        return self.get(permit_id)

    def expire_due(self) -> int:
        """Active and approved permits past their expiry become expired; how many did. Reads
        first, so a read of permits takes the write lock only when something is due."""
        now = self.now()
        due = (hub_permit.c.state.in_((ACTIVE, APPROVED)), hub_permit.c.expires_at <= now)
        with self.engine.connect() as conn:
            if conn.execute(select(hub_permit.c.permit_id).where(*due).limit(1)).first() is None:
                return 0
        with writing(self.engine) as conn:
            return conn.execute(
                update(hub_permit)
                .where(*due)
                .values(state=EXPIRED, ended_at=hub_permit.c.expires_at)
            ).rowcount

    def publish_results(self, ctx: RequestContext, permit_id: str, url: str) -> Permit:
        """The applicant says where the results are public (art. 61)."""
        permit = self.aimed_at(ctx, "permit-results", permit_id)
        if not self._sees(ctx.principal.subject, permit):  # as a read: hidden is missing
            raise self.refuse(ctx, "permit-results", permit_id, 404, "no such permit")
        if ctx.principal.subject != permit.applicant:
            raise self.refuse(ctx, "permit-results", permit_id, 403, "only the applicant publishes")
        if permit.state not in (ACTIVE, EXPIRED):
            raise self.refuse(ctx, "permit-results", permit_id, 409, "results follow processing")
        if not is_plain_https_url(url):
            raise HubError(400, "the results' address is an https URL")
        with writing(self.engine) as conn:
            conn.execute(
                update(hub_permit)
                .where(hub_permit.c.permit_id == permit_id)
                .values(results_url=url, results_published_at=self.now())
            )
            self.audit_in(conn, ctx, "permit-results", permit_id)
        return self.get(permit_id)

    # -- the project's member rights ------------------------------------------------------------

    def active_for_member(self, ctx: RequestContext, permit_id: str, action: str) -> Permit:
        """The permit if it is active and the caller is in its project; refused (audited) else,
        one that does not exist as every step's (aimed_at: its made-up id is not recorded)."""
        permit = self.aimed_at(ctx, action, permit_id)
        if not self._sees(ctx.principal.subject, permit):  # a hidden permit answers as missing
            raise self.refuse(ctx, action, permit_id, 404, "no such permit")
        if ctx.principal.subject not in permit.members:
            raise self.refuse(ctx, action, permit_id, 403, "only the project's team works on it")
        if permit.state != ACTIVE:
            raise self.refuse(ctx, action, permit_id, 403, f"the permit is {permit.state}")
        return permit


def permit_json(permit: Permit, now: datetime) -> dict[str, Any]:
    """A permit as the API shows it to its project and to reviewers."""
    a = asdict(permit.application)
    a["variables"] = {t: list(c) for t, c in permit.application.variables.items()}
    return {
        "id": permit.permit_id,
        "project": permit.project_id,
        "applicant": permit.applicant,
        "state": permit.state,
        "application": a,
        "conditions": permit.conditions,
        "decidedBy": permit.decided_by,
        "submitted": permit.submitted_at.isoformat() if permit.submitted_at else None,
        "decided": permit.decided_at.isoformat() if permit.decided_at else None,
        "expires": permit.expires_at.isoformat() if permit.expires_at else None,
        "results": permit.results_url,
        "clock": permit.clock(now),
    }
