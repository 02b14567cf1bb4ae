"""Alerts, representatives (and switching to the space of someone one represents), my data and
closing the space."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from carnet.db.instants import utc_now
from carnet.dependencies import ControlsDep, FhirDep, RecordDep, StepUpDep
from carnet.fhir.errors import FhirError
from carnet.policy.service import INVISIBLE_REPRESENTANTS_LEGAUX
from carnet.record.export import ExportUnavailableError
from carnet.record.service import RecordService
from carnet.web.caller import PageCaller, PersonPage
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.patient_controls import labels
from carnet.web.patient_controls.deps import (
    ActedOn,
    ActedOnDep,
    AlertsDep,
    ExportDep,
    NotTheirsError,
    acting_for,
    with_patient,
)
from carnet.web.patient_controls.forms import step_up_refusal, translated_errors
from carnet.web.router import not_found_page
from carnet.web.security import page_headers
from carnet.web.templating import render

router = APIRouter(include_in_schema=False)

ALERTS_SAVED = register_flash("alerts.saved", N_("Vos alertes sont enregistrées."))
CLOSED = register_flash("space.closed", N_("L'espace est fermé."), "info")
CONFIRM = N_("Cochez la case pour confirmer la fermeture.")


@router.get("/espace/alertes")
def alerts_page(
    request: Request,
    caller: PersonPage,
    alerts: AlertsDep,
    acted: ActedOnDep,
) -> Response:
    choice = alerts.choice(caller.ctx, acted.patient_id)
    return render(
        request,
        "patient_controls/alerts.html",
        {"choice": choice, "pour": acted.pour, "as_representative": acted.as_representative},
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.post("/espace/alertes")
def choose_alerts(
    request: Request,
    caller: PersonPage,
    alerts: AlertsDep,
    acted: ActedOnDep,
    first_access: Annotated[str, Form()] = "",
    new_document: Annotated[str, Form()] = "",
) -> Response:
    alerts.choose(
        caller.ctx,
        acted.patient_id,
        first_access=first_access == "1",
        new_document=new_document == "1",
    )
    return redirect(acted.path("/espace/alertes"), ALERTS_SAVED)


def _patient_name(fhir: FhirDep, caller: PersonPage, patient_id: str) -> str:
    """The represented person's name, read as the caller (the representative's right)."""
    try:
        body = fhir.read("Patient", patient_id, ctx=caller.ctx).body or {}
    except FhirError:
        return ""
    name = (body.get("name") or [{}])[0]
    return " ".join([*name.get("given", []), name.get("family", "")]).strip()


@router.get("/espace/representants")
def representatives_page(
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    record: RecordDep,
    fhir: FhirDep,
) -> Response:
    """One's representatives, the people one represents (switch to their space), and for a
    minor the items kept from their representatives."""
    own = caller.principal.patient_id or ""
    space = record.space(own)
    representatives = space.representatives if space is not None else []
    represented = record.representatives.represented_patients(own)
    state = controls.controls(caller.ctx, None)
    kept = [m["resource"] for m in state.masks if m["flag"] == INVISIBLE_REPRESENTANTS_LEGAUX]
    return render(
        request,
        "patient_controls/representatives.html",
        {
            "representatives": representatives,
            "represented": [(pid, _patient_name(fhir, caller, pid)) for pid in represented],
            "kept": [ref.partition("/")[2] for ref in kept if ref.startswith("DocumentReference/")],
            "kinds": labels.REPRESENTATION_KINDS,
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.get("/espace/representants/{patient_id}")
def represented_space(
    patient_id: str, request: Request, caller: PersonPage, controls: ControlsDep, fhir: FhirDep
) -> Response:
    """The space of someone one represents: their controls, history, alerts and data."""
    try:
        pid, as_rep = acting_for(controls, caller, patient_id)
    except NotTheirsError:
        return not_found_page(request)
    if not as_rep:
        return redirect("/espace")
    return render(
        request,
        "patient_controls/represented.html",
        {
            "name": _patient_name(fhir, caller, pid),
            "links": [
                (with_patient(path, pid, True), title)
                for path, title in (
                    ("/espace/controles", N_("Qui voit son dossier")),
                    ("/espace/historique", N_("Historique des accès")),
                    ("/espace/alertes", N_("Alertes")),
                    ("/espace/mes-donnees", N_("Ses données")),
                )
            ],
            "as_representative": True,
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.get("/espace/mes-donnees")
def my_data_page(
    request: Request,
    caller: PersonPage,
    record: RecordDep,
    acted: ActedOnDep,
) -> Response:
    return _my_data(request, caller, record, acted)


def _my_data(
    request: Request,
    caller: PageCaller,
    record: RecordService,
    acted: ActedOn,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    space = record.space(acted.patient_id)
    return render(
        request,
        "patient_controls/my_data.html",
        {
            "space": space,
            "kept_until": record.retention_end(utc_now()),
            "years": record.retention_years,
            "archive_path": acted.path("/espace/mes-donnees/dossier.zip"),
            "pour": acted.pour,
            "as_representative": acted.as_representative,
            "errors": translated_errors(request, errors),
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
        status=status,
    )


@router.get("/espace/mes-donnees/dossier.zip")
def my_data_archive(
    request: Request,
    caller: PersonPage,
    export: ExportDep,
    acted: ActedOnDep,
) -> Response:
    """The whole record: a FHIR Bundle and the documents' files, in one zip (EHDS art. 7)."""
    try:
        data = export.archive(caller.ctx, acted.patient_id)
    except ExportUnavailableError:
        return not_found_page(request)
    return Response(
        data,
        media_type="application/zip",
        headers={**page_headers(), "Content-Disposition": 'attachment; filename="mon-dossier.zip"'},
    )


@router.post("/espace/mes-donnees/fermeture")
def close_space(
    request: Request,
    caller: PersonPage,
    record: RecordDep,
    step_up: StepUpDep,
    acted: ActedOnDep,
    confirm: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
) -> Response:
    """Close the space after a step-up; its data is kept until the retention ends."""
    if confirm != "1":
        return _my_data(request, caller, record, acted, {"confirm": CONFIRM}, 400)
    if refusal := step_up_refusal(step_up, caller, password, code, "close"):
        return _my_data(request, caller, record, acted, {"code-fermeture": refusal}, 403)
    try:
        record.close(acted.patient_id, reason="request", ctx=caller.ctx)
    except FhirError:
        return not_found_page(request)  # already closed, or no space: nothing to close
    return redirect(acted.path("/espace/mes-donnees"), CLOSED)
