"""Who sees what: masks with their preview, blocked professionals, emergency-access opposition,
research opt-out. Plain forms, POST-redirect-GET; the services decide and audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from carnet.authn.service import AccountService
from carnet.dependencies import AccountsDep, ControlsDep, FhirDep, SettingsDep, StepUpDep
from carnet.fhir.errors import FhirError
from carnet.fhir.service import FhirService
from carnet.policy.control_events import ControlError
from carnet.policy.controls import ControlsService
from carnet.policy.service import INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS
from carnet.record.history import practitioner_names
from carnet.web.caller import PageCaller, PersonPage
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.patient_controls import labels
from carnet.web.patient_controls.deps import (
    ActedOn,
    ActedOnDep,
    NotTheirsError,
    acting_for,
    with_patient,
)
from carnet.web.patient_controls.forms import step_up_refusal, translated_errors
from carnet.web.router import not_found_page
from carnet.web.templating import render

router = APIRouter(include_in_schema=False)

MASKED = register_flash("controls.masked", N_("Le document est masqué aux professionnels."))
UNMASKED = register_flash("controls.unmasked", N_("Le document est de nouveau visible."))
KEPT = register_flash("controls.kept", N_("Le document est caché à vos représentants légaux."))
SHARED = register_flash("controls.shared", N_("Vos représentants légaux voient ce document."))
BLOCKED = register_flash("controls.blocked", N_("Ce professionnel est bloqué."))
UNBLOCKED = register_flash("controls.unblocked", N_("Ce professionnel n'est plus bloqué."))
SAVED = register_flash("controls.saved", N_("Vos choix sont enregistrés."))

Text = Annotated[str, Form()]  # a missing field is empty: the page answers, never a JSON 422


def documents(
    fhir: FhirService, caller: PageCaller, patient_id: str, base: str
) -> list[dict[str, str]]:
    """The record's documents as the caller reads them (the policy filters in the query)."""
    bundle = fhir.search(
        base,
        "DocumentReference",
        [("patient", patient_id), ("_count", "200")],
        attachment_data=False,  # titles and dates only: no file read nor decrypted
        ctx=caller.ctx,
    )
    found = []
    for entry in bundle.get("entry") or []:
        doc = entry["resource"]
        found.append(
            {"id": doc["id"], "title": document_title(doc), "date": str(doc.get("date") or "")}
        )
    return sorted(found, key=lambda d: d["date"], reverse=True)


def document_title(doc: dict[str, Any]) -> str:
    for attachment in (c.get("attachment") or {} for c in doc.get("content") or []):
        if attachment.get("title"):
            return str(attachment["title"])
    for coding in (doc.get("type") or {}).get("coding") or []:
        if coding.get("display"):
            return str(coding["display"])
    return str((doc.get("type") or {}).get("text") or doc.get("description") or "Document")


def _profession_of(accounts: AccountService) -> Callable[[str], str | None]:
    def profession_of(rpps: str) -> str | None:
        account = accounts.find_by_rpps(rpps)
        return account.profession if account is not None else None

    return profession_of


@router.get("/espace/controles")
def controls_page(
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    fhir: FhirDep,
    settings: SettingsDep,
    acted: ActedOnDep,
) -> Response:
    """Masks, blocks, emergency access and research, on one page."""
    return _controls_page(request, caller, controls, fhir, str(settings.fhir_base_url), acted)


def _controls_page(
    request: Request,
    caller: PageCaller,
    controls: ControlsService,
    fhir: FhirService,
    base: str,
    acted: ActedOn,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    patient_id = acted.patient_id
    state = controls.controls(caller.ctx, patient_id)
    masked = {m["resource"] for m in state.masks if m["flag"] == MASQUE_PS}
    names = practitioner_names(
        fhir, caller.ctx, sorted({*state.blocked, *(c["rpps"] for c in state.care)}), base
    )
    return render(
        request,
        "patient_controls/controls.html",
        {
            "patient_id": patient_id,
            "as_representative": acted.as_representative,
            "pour": acted.pour,
            "documents": documents(fhir, caller, patient_id, base),
            "masked": masked,
            "blocked": [(rpps, names.get(rpps, "")) for rpps in state.blocked],
            "care": [
                (c["rpps"], names.get(c["rpps"], ""), c["medecinTraitant"]) for c in state.care
            ],
            "emergency_opposition": state.emergency_opposition,
            "research_optout": state.research_optout,
            "errors": translated_errors(request, errors),
            "self_path": acted.path("/espace/controles"),
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
        status=status,
    )


@router.get("/espace/controles/document/{doc_id}")
def document_page(
    doc_id: str,
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    accounts: AccountsDep,
    fhir: FhirDep,
    settings: SettingsDep,
) -> Response:
    """Who reads this document now, and who would still read it if masked (the policy's answer)."""
    reference = f"DocumentReference/{doc_id}"
    try:
        stored = fhir.read("DocumentReference", doc_id, ctx=caller.ctx)
        seen = controls.audience(caller.ctx, reference, _profession_of(accounts))
        patient_id, as_rep = acting_for(controls, caller, stored.patient_id)
    except (FhirError, ControlError, NotTheirsError):
        return not_found_page(request)  # foreign, hidden or missing: the same page
    state = controls.controls(caller.ctx, patient_id)
    flags = {m["flag"] for m in state.masks if m["resource"] == reference}
    base = str(settings.fhir_base_url)
    rpps = sorted({v.rpps for v in [*seen.now, *seen.if_masked]})
    names = practitioner_names(fhir, caller.ctx, rpps, base)
    return render(
        request,
        "patient_controls/document.html",
        {
            "doc_id": doc_id,
            "title": document_title(stored.body or {}),
            "masked": MASQUE_PS in flags,
            "kept_from_representatives": INVISIBLE_REPRESENTANTS_LEGAUX in flags,
            "as_representative": as_rep,
            "now": [(v, names.get(v.rpps, "")) for v in seen.now],
            "if_masked": [(v, names.get(v.rpps, "")) for v in seen.if_masked],
            "professions": labels.PROFESSIONS,
            "back": with_patient("/espace/controles", patient_id, as_rep),
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.post("/espace/controles/document/{doc_id}")
def set_document_mask(
    doc_id: str,
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    choice: Text = "",
) -> Response:
    """Mask or unmask the document from professionals; a minor hides it from representatives."""
    flags = {
        "masquer": (MASQUE_PS, True, MASKED),
        "demasquer": (MASQUE_PS, False, UNMASKED),
        "cacher-representants": (INVISIBLE_REPRESENTANTS_LEGAUX, True, KEPT),
        "montrer-representants": (INVISIBLE_REPRESENTANTS_LEGAUX, False, SHARED),
    }
    if choice not in flags:
        return not_found_page(request)
    flag, on, message = flags[choice]
    try:
        controls.set_mask(caller.ctx, f"DocumentReference/{doc_id}", flag, on=on)
    except ControlError as err:
        controls.refused(caller.ctx, "mask" if on else "unmask", err.status)
        return not_found_page(request)
    return redirect(f"/espace/controles/document/{doc_id}", message)


@router.post("/espace/controles/blocage")
def block(
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    fhir: FhirDep,
    settings: SettingsDep,
    step_up: StepUpDep,
    acted: ActedOnDep,
    rpps: Text = "",
    action: Text = "",
    password: Text = "",
    code: Text = "",
) -> Response:
    """Block a professional by RPPS; lifting a block asks for the password and a new code."""
    base = str(settings.fhir_base_url)
    on = action != "debloquer"
    if not on and (refusal := step_up_refusal(step_up, caller, password, code, "unblock")):
        return _controls_page(
            request, caller, controls, fhir, base, acted, {f"code-{rpps}": refusal}, 403
        )
    try:
        controls.set_block(caller.ctx, acted.patient_id, rpps.strip(), on=on)
    except ControlError as err:
        controls.refused(caller.ctx, "block" if on else "unblock", err.status)
        message = N_("Un numéro RPPS compte 11 chiffres.")
        return _controls_page(request, caller, controls, fhir, base, acted, {"rpps": message}, 400)
    return redirect(acted.path("/espace/controles"), BLOCKED if on else UNBLOCKED)


@router.post("/espace/controles/preferences")
def preferences(
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    fhir: FhirDep,
    settings: SettingsDep,
    step_up: StepUpDep,
    acted: ActedOnDep,
    emergency_opposition: Text = "",
    research_optout: Text = "",
    section: Text = "",
    password: Text = "",
    code: Text = "",
) -> Response:
    """Emergency-access opposition (lifting it asks for a step-up) or the research opt-out."""
    patient_id = acted.patient_id
    current = controls.controls(caller.ctx, patient_id)
    if section == "urgence":
        opposed = emergency_opposition == "1"
        if current.emergency_opposition and not opposed:
            refusal = step_up_refusal(step_up, caller, password, code, "preferences")
            if refusal:
                base = str(settings.fhir_base_url)
                errors = {"code-urgence": refusal}
                return _controls_page(request, caller, controls, fhir, base, acted, errors, 403)
        controls.set_preferences(caller.ctx, patient_id, emergency_opposition=opposed)
    elif section == "recherche":
        controls.set_preferences(caller.ctx, patient_id, research_optout=research_optout == "1")
    else:
        return not_found_page(request)
    return redirect(acted.path("/espace/controles"), SAVED)
