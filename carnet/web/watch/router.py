"""The security officer's alert queue: the open alerts, best first; one alert with its reasons,
records and audit events; closing it with an outcome. For an operator account holding the
security-officer role only (``carnet watch grant``); anyone else meets the 403 page, and the
refusal is in the audit log. Ids and reason words only: the queue never shows a name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from carnet.caller import Kind
from carnet.dependencies import services_of
from carnet.watch.models import OUTCOMES
from carnet.watch.service import WatchError, WatchService
from carnet.watch.wiring import build
from carnet.web.caller import PageCaller, SignedInPage, WrongKindOfCallerError
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.router import not_found_page
from carnet.web.templating import page_locale, render, translator

router = APIRouter(include_in_schema=False)

QUEUE_PATH = "/securite/alertes"
CLOSED = register_flash("watch.closed", N_("L'alerte est close."))
CHOOSE_OUTCOME = N_("Choisissez l'issue de l'alerte.")

REASON_LABELS = {
    "family": N_("même nom et même adresse que le professionnel (un proche)"),
    "same-surname": N_("même nom de famille que le professionnel"),
    "neighbour": N_("habite la même rue que le professionnel"),
    "vip": N_("personne signalée (personnalité)"),
    "colleague": N_("personne signalée (membre du personnel)"),
    "mass-export": N_("exportation massive de dossiers"),
    "stolen-credentials": N_(
        "identifiants peut-être volés : échecs de connexion, poste inconnu, hors horaires"
    ),
    "sequential-browsing": N_("dossiers ouverts les uns après les autres, dans l'ordre"),
    "emergency-frequency": N_("accès en urgence plus fréquents que d'habitude"),
    "volume-spike": N_("beaucoup plus de dossiers ouverts que d'habitude"),
    "off-hours": N_("en dehors des horaires habituels"),
    "unusual": N_("accès inhabituel sans motif de soin"),
}
OUTCOME_LABELS = {
    "confirmed": N_("accès anormal confirmé (les patients qui l'ont choisi sont prévenus)"),
    "legitimate": N_("accès justifié"),
    "false-positive": N_("fausse alerte"),
    "duplicate": N_("doublon d'une autre alerte"),
}


def watch_service(request: Request) -> WatchService:
    s = services_of(request)
    return build(s.settings, s.engine, s.fhir, s.audit, s.crypto.blind)


WatchDep = Annotated[WatchService, Depends(watch_service)]


async def officer_page(caller: SignedInPage, watch: WatchDep) -> PageCaller:
    """A page of the security officer: an operator holding the role; anyone else a 403 page (a
    refusal the service records when the page asks it)."""
    if caller.principal.kind is not Kind.OPERATOR or not await run_in_threadpool(
        watch.is_officer, caller.principal
    ):
        await run_in_threadpool(watch.refused, caller.ctx, "watch-page")
        raise WrongKindOfCallerError
    return caller


OfficerPage = Annotated[PageCaller, Depends(officer_page)]


def _page(
    request: Request,
    caller: PageCaller,
    template: str,
    context: dict[str, object],
    *,
    status: int = 200,
) -> Response:
    _ = translator(page_locale(request))
    return render(
        request,
        template,
        {
            "errors": {},
            **context,
            "reason_labels": REASON_LABELS,
            "outcome_labels": OUTCOME_LABELS,
            "outcome_options": [("", _("Choisir"))] + [(o, _(OUTCOME_LABELS[o])) for o in OUTCOMES],
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
        status=status,
    )


@router.get(QUEUE_PATH)
def queue(request: Request, caller: OfficerPage, watch: WatchDep) -> Response:
    """The open alerts, best first."""
    alerts = watch.alerts(caller.ctx)
    return _page(request, caller, "watch/queue.html", {"alerts": alerts})


@router.get(QUEUE_PATH + "/{alert_id}")
def alert(request: Request, alert_id: str, caller: OfficerPage, watch: WatchDep) -> Response:
    """One alert: its reasons, records and events, and the form that closes it."""
    try:
        found = watch.alert(caller.ctx, alert_id)
    except WatchError as err:
        if err.status == 404:
            return not_found_page(request)
        raise
    return _page(request, caller, "watch/alert.html", {"alert": found})


@router.post(QUEUE_PATH + "/{alert_id}")
def close(
    request: Request,
    alert_id: str,
    caller: OfficerPage,
    watch: WatchDep,
    outcome: Annotated[str, Form()] = "",
) -> Response:
    """Close the alert with its outcome; a bad outcome re-renders the form (400)."""
    try:
        watch.close(caller.ctx, alert_id, outcome)
    except WatchError as err:
        if err.status == 404:
            return not_found_page(request)
        if err.status == 400:
            try:  # the outcome is checked first: the alert may not exist either
                found = watch.alert(caller.ctx, alert_id)
            except WatchError:
                return not_found_page(request)
            message = translator(page_locale(request))(CHOOSE_OUTCOME)
            context: dict[str, object] = {"alert": found, "errors": {"outcome": message}}
            return _page(request, caller, "watch/alert.html", context, status=400)
        if err.status == 409:
            return redirect(QUEUE_PATH, CLOSED)
        raise
    return redirect(QUEUE_PATH, CLOSED)
