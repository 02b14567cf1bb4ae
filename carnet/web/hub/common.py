"""What the hub's pages share: the words for states, and rendering as a hub caller."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from carnet.hub.permits import Permit
from carnet.web.hub.caller import HubCaller
from carnet.web.i18n import N_
from carnet.web.templating import page_locale, render, translator

STATUS_LABELS = {
    "draft": N_("brouillon"),
    "submitted": N_("déposée"),
    "under_review": N_("en instruction"),
    "approved": N_("accordée"),
    "rejected": N_("refusée"),
    "active": N_("en cours"),
    "expired": N_("terminée"),
    "revoked": N_("retirée"),
}
RELEASE_LABELS = {
    "refused_by_gates": N_("refusée par les contrôles automatiques"),
    "pending": N_("en attente des vérificateurs"),
    "released": N_("diffusée"),
    "refused": N_("refusée par un vérificateur"),
}


def plain(value: Any) -> Any:
    """A released value as people read it: 10 rather than 10.0; None stays None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def now() -> datetime:
    return datetime.now(UTC)


def hub_page(
    request: Request,
    caller: HubCaller,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
) -> HTMLResponse:
    """A hub page as ``caller``, with the words for states, the caller's roles and
    ``options(pairs)`` (a select's (value, label) pairs, labels translated)."""
    translate = translator(page_locale(request))

    def options(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(value, translate(label)) for value, label in pairs]

    return render(
        request,
        template,
        {
            "status_labels": STATUS_LABELS,
            "release_labels": RELEASE_LABELS,
            "roles": caller.roles,
            "options": options,
            "plain": plain,
            **context,
        },
        caller=caller.page.principal,
        csrf_token=caller.page.csrf_token,
        status=status,
    )


def clock_of(permit: Permit) -> dict[str, Any]:
    """The permit's two clocks (art. 68 and 61), as of now."""
    return permit.clock(now())
