"""The access committee's pages: the queue of applications, one application in full with the
three-month clock, and the decision (approve with conditions and a validity, or reject with a
reason). A reviewer never decides on an application they made or whose team they are in: the
service refuses (audited) and the page says why, before and after they try.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from carnet.dependencies import HubDep
from carnet.hub.errors import HubError
from carnet.hub.permits import DRAFT, SUBMITTED, UNDER_REVIEW, Permit
from carnet.hub.wiring import HubServices
from carnet.web.flash import redirect, register_flash
from carnet.web.hub.caller import HubCaller, ReviewerPage
from carnet.web.hub.common import clock_of, hub_page
from carnet.web.hub.forms import DATE_HANDLING, DEIDENTIFICATION, application_values, text_of
from carnet.web.i18n import N_
from carnet.web.router import not_found_page

router = APIRouter(include_in_schema=False)

APPROVED = register_flash("hub.approved", N_("La demande est accordée."))
REJECTED = register_flash("hub.rejected", N_("La demande est refusée."))
OWN_APPLICATION = N_(
    "Vous faites partie de l'équipe de ce projet : un autre membre du comité décide."
)
NOT_OPEN = N_("Cette demande n'attend plus de décision.")
DECISIONS = ("approve", "reject")


@router.get("/recherche/instruction")
def queue(request: Request, caller: ReviewerPage, hub: HubDep) -> Response:
    """Applications past draft: those awaiting a decision first, each with its clock."""
    permits = [p for p in hub.permits.visible_to(caller.ctx) if p.state != DRAFT]
    waiting = [p for p in permits if p.state in (SUBMITTED, UNDER_REVIEW)]
    decided = [p for p in permits if p.state not in (SUBMITTED, UNDER_REVIEW)]
    rows = [(p, clock_of(p), caller.subject in p.members) for p in (*waiting, *decided)]
    return hub_page(request, caller, "hub/review_queue.html", {"rows": rows})


def _reviewable(hub: HubServices, caller: HubCaller, permit_id: str) -> Permit | None:
    try:
        permit = hub.permits.view(caller.ctx, permit_id)
    except HubError:
        return None
    return None if permit.state == DRAFT else permit


def _decision_page(
    request: Request,
    caller: HubCaller,
    permit: Permit,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    refusal: str | None = None,
    status: int = 200,
) -> Response:
    own = caller.subject in permit.members
    return hub_page(
        request,
        caller,
        "hub/review.html",
        {
            "permit": permit,
            "application": permit.application,
            "listed": application_values(permit.application),
            "clock": clock_of(permit),
            "own": own,
            "open": permit.state in (SUBMITTED, UNDER_REVIEW),
            "own_text": OWN_APPLICATION,
            "refusal": refusal,
            "values": values or {"valid_months": str(permit.application.duration_months)},
            "errors": errors or {},
            "deidentification_labels": DEIDENTIFICATION,
            "date_labels": DATE_HANDLING,
        },
        status=status,
    )


@router.get("/recherche/instruction/{permit_id}")
def application(request: Request, caller: ReviewerPage, hub: HubDep, permit_id: str) -> Response:
    """One application in full, with the decision forms (or why the caller cannot decide)."""
    permit = _reviewable(hub, caller, permit_id)
    if permit is None:
        return not_found_page(request)
    return _decision_page(request, caller, permit)


@router.post("/recherche/instruction/{permit_id}")
async def decide(request: Request, caller: ReviewerPage, hub: HubDep, permit_id: str) -> Response:
    """Approve (conditions, validity in months) or reject (a reason). A submitted application is
    taken under review first: both steps are the state machine's, each audited."""
    form = await request.form()
    values = {name: text_of(form, name) for name in ("decision", "conditions", "valid_months")}
    values["reason"] = text_of(form, "reason")

    def answer() -> Response:
        permit = _reviewable(hub, caller, permit_id)
        if permit is None:
            return not_found_page(request)
        decision = values["decision"]
        errors: dict[str, str] = {}
        months = values["valid_months"]
        if decision not in DECISIONS:
            errors["decision"] = N_("Choisissez d'accorder ou de refuser.")
        elif decision == "approve" and (not months.isdigit() or not 1 <= int(months) <= 60):
            errors["valid_months"] = N_("Une validité entre 1 et 60 mois.")
        elif decision == "reject" and not values["reason"]:
            errors["reason"] = N_("Donnez le motif du refus.")
        if errors:
            return _decision_page(request, caller, permit, values=values, errors=errors, status=400)
        try:
            if permit.state == SUBMITTED:
                hub.permits.step(caller.ctx, permit_id, "review")
            if decision == "approve":
                hub.permits.step(
                    caller.ctx,
                    permit_id,
                    "approve",
                    conditions=values["conditions"][:4000] or None,
                    valid_months=int(months),
                )
            else:
                hub.permits.step(
                    caller.ctx, permit_id, "reject", conditions=values["reason"][:4000]
                )
        except HubError as exc:
            refusal = OWN_APPLICATION if caller.subject in permit.members else NOT_OPEN
            again = hub.permits.get(permit_id)
            return _decision_page(
                request, caller, again, values=values, refusal=refusal, status=exc.status
            )
        return redirect("/recherche/instruction", APPROVED if decision == "approve" else REJECTED)

    return await run_in_threadpool(answer)
