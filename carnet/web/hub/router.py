"""The research hub's pages: the public register of data permits (no sign-in), in the portal's
style. The same entries as ``GET /hub/register`` (carnet/hub/register.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from carnet.dependencies import HubDep
from carnet.hub.register import register_entry
from carnet.web.caller import OptionalCaller
from carnet.web.i18n import N_
from carnet.web.templating import render

router = APIRouter(include_in_schema=False)

STATUS_LABELS = {
    "submitted": N_("déposée"),
    "under_review": N_("en instruction"),
    "approved": N_("accordée"),
    "rejected": N_("refusée"),
    "active": N_("en cours"),
    "expired": N_("terminée"),
    "revoked": N_("retirée"),
}


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
