"""The research hub's pages: the public register of data permits (no sign-in), the same entries
as ``GET /hub/register`` (carnet/hub/register.py); in the person's space, the research projects
whose extracts included them (carnet/hub/omop/uses.py); and the pages of the hub's members under
``/recherche``: researchers (research.py), the access committee (review.py) and the output
checkers (checks.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from carnet.db.instants import parse_stamp
from carnet.dependencies import HubDep, services_of
from carnet.hub.omop.uses import projects_that_included_me
from carnet.hub.register import register_entry
from carnet.web.caller import OptionalCaller, PersonPage
from carnet.web.hub import checks, research, review
from carnet.web.hub.common import STATUS_LABELS
from carnet.web.i18n import N_
from carnet.web.space import SpaceLink, register_space_link
from carnet.web.templating import render

router = APIRouter(include_in_schema=False)
router.include_router(research.router)
router.include_router(review.router)
router.include_router(checks.router)


@router.get("/registre")
def public_register(request: Request, caller: OptionalCaller, hub: HubDep) -> Response:
    """Who uses which health data for what: every application, its decision and results."""
    now = datetime.now(UTC)
    entries = [register_entry(p, now) for p in hub.permits.all_permits()]
    return render(
        request,
        "hub/register.html",
        {"entries": entries, "status_labels": STATUS_LABELS},
        caller=caller,
    )


register_space_link(
    SpaceLink(
        "/espace/recherche",
        N_("Mes données et la recherche"),
        N_("Les projets de recherche dont les extractions ont inclus vos données."),
        order=90,
    )
)


@router.get("/espace/recherche")
def research_uses(request: Request, caller: PersonPage) -> Response:
    """The projects whose released extracts included the signed-in person (their own only)."""
    services = services_of(request)
    uses = projects_that_included_me(services.engine, services.audit, caller.ctx)
    rows = [(use, parse_stamp(use.extracted_at)) for use in reversed(uses)]  # newest first
    return render(
        request,
        "hub/uses.html",
        {"rows": rows},
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )
