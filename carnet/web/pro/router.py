"""The professionals' workspace: find a patient, open their record as the rules allow, search in
it, deposit a document, and emergency access.

Every page runs as the signed-in professional (``ProfessionalPage``) and calls the services the
API calls, so it shows nothing the API would refuse. A record that does not exist, one the
professional has no right on, and one that blocks them answer the same page.

Identities and search words travel in POST bodies, never in a URL: a URL ends up in access logs
and in the browser's history. Those result pages are rendered in answer to the POST itself
(``no-store``), not after a redirect.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from carnet.dependencies import EmergencyDep
from carnet.fhir.errors import FhirError
from carnet.identity.lookup import PatientFinder, PatientLookupError
from carnet.policy.break_glass import BREAK_GLASS_REASONS
from carnet.policy.control_events import ControlError
from carnet.web.caller import ProfessionalPage
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.pro import record as record_pages
from carnet.web.pro.services import EMERGENCY_REASONS, finder_of, options
from carnet.web.templating import render

router = APIRouter(include_in_schema=False)
router.include_router(record_pages.router)

EMERGENCY_OPENED = register_flash(
    "pro.emergency",
    N_("Accès en urgence ouvert. Le patient en est informé."),
    "info",
)


def _form_value(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


@router.get("/pro")
def workspace(request: Request, caller: ProfessionalPage) -> Response:
    """The find-a-patient form."""
    return render(
        request,
        "pro/find.html",
        {
            "mode": "ins",
            "values": {},
            "errors": {},
            "found": None,
            "reasons": options(request, EMERGENCY_REASONS),
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.post("/pro")
async def find_patient(request: Request, caller: ProfessionalPage) -> Response:
    """Patients found by INS or by strict traits, among the records this professional may open."""
    form = await request.form()
    mode = "traits" if _form_value(form, "mode") == "traits" else "ins"
    values = {
        name: _form_value(form, name)
        for name in ("ins", "birth_name", "first_name", "birth_date", "sex")
    }
    finder: PatientFinder = finder_of(request)
    errors: dict[str, str] = {}
    found = None
    try:
        if mode == "ins":
            if not values["ins"]:
                errors["ins"] = N_("Saisissez le matricule INS (15 chiffres).")
            else:
                found = await run_in_threadpool(finder.by_ins, caller.ctx, values["ins"])
        else:
            found = await run_in_threadpool(
                finder.by_traits,
                caller.ctx,
                values["birth_name"],
                values["first_name"],
                values["birth_date"],
                values["sex"],
            )
    except PatientLookupError:
        if mode == "ins":
            errors["ins"] = N_("Ce matricule INS n'est pas valide : vérifiez les 15 chiffres.")
        else:
            errors["birth_name"] = N_(
                "Saisissez le nom de naissance, le premier prénom, la date de naissance et le "
                "sexe : un nom seul ne suffit jamais."
            )
    return render(
        request,
        "pro/find.html",
        {
            "mode": mode,
            "values": values,
            "errors": errors,
            "found": found,
            "reasons": options(request, EMERGENCY_REASONS),
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
        status=400 if errors else 200,
    )


@router.post("/pro/urgence")
async def emergency_access(
    request: Request, caller: ProfessionalPage, emergency: EmergencyDep
) -> Response:
    """Emergency access to the record of an INS, with its required reason: time-limited,
    audited, the patient told. Refused alike for an unknown INS, a patient who opposed emergency
    access and one who blocked this professional."""
    form = await request.form()
    ins, reason = _form_value(form, "ins"), _form_value(form, "reason")
    errors: dict[str, str] = {}
    if reason not in BREAK_GLASS_REASONS:
        errors["reason"] = N_("Choisissez le motif de l'accès en urgence.")
    if not ins:
        errors["ins"] = N_("Saisissez le matricule INS (15 chiffres).")
    patient_id = None
    if not errors:
        try:
            patient_id = await run_in_threadpool(
                finder_of(request).emergency_patient, caller.ctx, ins
            )
        except PatientLookupError:
            errors["ins"] = N_("Ce matricule INS n'est pas valide : vérifiez les 15 chiffres.")
    if errors:
        return render(
            request,
            "pro/find.html",
            {
                "mode": "ins",
                "values": {"ins": ins},
                "errors": errors,
                "found": [],
                "reasons": options(request, EMERGENCY_REASONS),
                "reason": reason,
            },
            caller=caller.principal,
            csrf_token=caller.csrf_token,
            status=400,
        )
    refused = patient_id is None
    if patient_id is not None:
        try:
            await run_in_threadpool(emergency.break_glass, caller.ctx, patient_id, reason)
        except (ControlError, FhirError):
            refused = True
    if refused:
        if patient_id is None:  # the others are audited by the break-glass itself
            emergency.refused(replace(caller.ctx, purpose="emergency"), "break-glass", 403)
        return render(
            request,
            "pro/emergency_refused.html",
            {},
            caller=caller.principal,
            csrf_token=caller.csrf_token,
            status=403,
        )
    return redirect(f"/pro/patients/{patient_id}", EMERGENCY_OPENED)
