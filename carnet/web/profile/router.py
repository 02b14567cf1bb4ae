"""The pages of the medical profile: ``/espace/profil`` lists each kind with its items, and each
kind has a form to add, edit and delete (with a confirmation) an item, POST-redirect-GET.

A representative acts for the person they represent with ``?pour=<patient>`` (and the hidden
field ``pour``): a record the caller neither owns nor represents, an item of another record,
one not declared by the patient, an unknown kind: the same missing page. Every read and write
is the caller's own FHIR interaction, decided by the policy and audited as them.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from carnet.dependencies import ControlsDep, FhirDep, SettingsDep
from carnet.fhir.service import FhirService
from carnet.web.caller import PageCaller, PersonPage
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.patient_controls.deps import NotTheirsError, acting_for, with_patient
from carnet.web.profile import items
from carnet.web.profile.fields import Message, read_form
from carnet.web.profile.kind import Kind
from carnet.web.profile.kinds import KINDS
from carnet.web.router import not_found_page
from carnet.web.space import SpaceLink, register_space_link
from carnet.web.templating import page_locale, render, translator

router = APIRouter(include_in_schema=False)

PROFILE_PATH = "/espace/profil"
SAVED = register_flash("profile.saved", N_("C'est enregistré dans votre profil médical."))
DELETED = register_flash("profile.deleted", N_("L'élément est supprimé de votre profil."), "info")
REFUSED = N_("Votre dossier n'accepte pas cette modification pour l'instant.")
CHANGED = N_(
    "Cet élément a été modifié entre-temps : rechargez la page et saisissez à nouveau vos "
    "changements."
)

register_space_link(
    SpaceLink(
        PROFILE_PATH,
        N_("Mon profil médical"),
        N_(
            "Vos antécédents, allergies, traitements, vaccinations, mesures, directives "
            "anticipées, personnes à prévenir : ce que vous voulez que les soignants sachent."
        ),
        order=25,
    )
)


def _today() -> date:
    return date.today()


def _acting(controls: Any, caller: PageCaller, pour: str | None) -> tuple[str, bool] | None:
    try:
        return acting_for(controls, caller, pour)
    except NotTheirsError:
        return None


def _messages(request: Request, errors: dict[str, Message]) -> dict[str, str]:
    gettext = translator(page_locale(request))
    shown = {}
    for name, message in errors.items():
        text = gettext(message.text)
        shown[name] = text % dict(message.params) if message.params else text
    return shown


def _form_page(
    request: Request,
    caller: PageCaller,
    kind: Kind,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    patient_id: str,
    as_rep: bool,
    item_id: str = "",
    version: str = "",
    form_error: str = "",
    submission: str = "",
    status: int = 200,
) -> Response:
    action = f"{PROFILE_PATH}/{kind.slug}/{item_id or 'ajout'}"
    context = {
        "kind": kind,
        "values": values,
        "errors": errors,
        "form_error": form_error,
        "action": action,
        "item_id": item_id,
        "version": version,
        "pour": patient_id if as_rep else "",
        "as_representative": as_rep,
        "back": with_patient(PROFILE_PATH, patient_id, as_rep),
        "today": _today().isoformat(),
        # an add form's own id; kept when the form comes back with errors (nothing was stored)
        "submission": "" if item_id else (submission or items.new_submission()),
    }
    return render(
        request,
        "profile/form.html",
        context,
        caller=caller.principal,
        csrf_token=caller.csrf_token,
        status=status,
    )


@router.get(PROFILE_PATH)
def profile(
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    fhir: FhirDep,
    settings: SettingsDep,
    pour: str | None = None,
) -> Response:
    """Every kind of the profile with the items the patient declared."""
    acting = _acting(controls, caller, pour)
    if acting is None:
        return not_found_page(request)
    patient_id, as_rep = acting
    base, gettext = settings.fhir_base_url, translator(page_locale(request))
    sections = [
        (kind, items.listed(fhir, base, caller.ctx, kind, patient_id, gettext))
        for kind in KINDS.values()
    ]
    return render(
        request,
        "profile/profile.html",
        {
            "sections": sections,
            "pour": patient_id if as_rep else "",
            "as_representative": as_rep,
            "suffix": f"?pour={patient_id}" if as_rep else "",
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.get(PROFILE_PATH + "/{slug}/ajout")
def add_form(
    slug: str,
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    pour: str | None = None,
) -> Response:
    """The empty form of a kind."""
    kind = KINDS.get(slug)
    acting = _acting(controls, caller, pour)
    if kind is None or not kind.editable or acting is None:
        return not_found_page(request)
    values = {field.name: "" for field in kind.fields}
    return _form_page(request, caller, kind, values, {}, patient_id=acting[0], as_rep=acting[1])


def _submitted(
    request: Request, kind: Kind, form: FormData
) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    raw, parsed, errors = read_form(kind.fields, form, today=_today())
    if not errors:
        errors.update(kind.check(parsed))
    return raw, parsed, _messages(request, errors)


@router.post(PROFILE_PATH + "/{slug}/ajout")
async def add(
    slug: str,
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    fhir: FhirDep,
    pour: Annotated[str, Form()] = "",
) -> Response:
    """Check the form; store the new item; back to the profile (POST-redirect-GET)."""
    form = await request.form()  # read once already by the CSRF check
    kind = KINDS.get(slug)
    acting = await run_in_threadpool(_acting, controls, caller, pour)  # reads the store
    if kind is None or not kind.editable or acting is None:
        return not_found_page(request)
    patient_id, as_rep = acting
    submission = str(form.get("envoi") or "")[:32]
    raw, parsed, errors = _submitted(request, kind, form)
    if errors:
        return _form_page(
            request, caller, kind, raw, errors, patient_id=patient_id, as_rep=as_rep,
            submission=submission, status=400,
        )  # fmt: skip
    body = kind.build(parsed, patient_id, _today().isoformat())
    try:
        await _in_thread(items.create, fhir, caller, kind, body, submission or None)
    except items.WriteRefusedError:
        message = translator(page_locale(request))(REFUSED)
        return _form_page(
            request, caller, kind, raw, {}, patient_id=patient_id, as_rep=as_rep,
            form_error=message, submission=submission, status=403,
        )  # fmt: skip
    return redirect(with_patient(PROFILE_PATH, patient_id, as_rep) + f"#{kind.slug}", SAVED)


async def _in_thread(function: Any, fhir: FhirService, caller: PageCaller, *args: Any) -> Any:
    return await run_in_threadpool(function, fhir, caller.ctx, *args)


@router.get(PROFILE_PATH + "/{slug}/{item_id}")
def edit_form(
    slug: str,
    item_id: str,
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    fhir: FhirDep,
    pour: str | None = None,
) -> Response:
    """The form of one item, filled with what it holds."""
    kind = KINDS.get(slug)
    acting = _acting(controls, caller, pour)
    if kind is None or not kind.editable or acting is None:
        return not_found_page(request)
    patient_id, as_rep = acting
    item = items.read(fhir, caller.ctx, kind, item_id, patient_id)
    if item is None:
        return not_found_page(request)
    version = str((item.get("meta") or {}).get("versionId") or "")
    return _form_page(
        request, caller, kind, items.values_for_form(kind, item), {}, patient_id=patient_id,
        as_rep=as_rep, item_id=item_id, version=version,
    )  # fmt: skip


@router.post(PROFILE_PATH + "/{slug}/{item_id}")
async def edit(
    slug: str,
    item_id: str,
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    fhir: FhirDep,
    pour: Annotated[str, Form()] = "",
) -> Response:
    """Check the form; replace the item (if no one changed it since the form was shown)."""
    form = await request.form()
    kind = KINDS.get(slug)
    acting = await run_in_threadpool(_acting, controls, caller, pour)  # reads the store
    if kind is None or not kind.editable or acting is None:
        return not_found_page(request)
    patient_id, as_rep = acting
    item = await _in_thread(items.read, fhir, caller, kind, item_id, patient_id)
    if item is None:
        return not_found_page(request)
    version = str(form.get("version") or "")[:16]
    raw, parsed, errors = _submitted(request, kind, form)
    if errors:
        return _form_page(
            request, caller, kind, raw, errors, patient_id=patient_id, as_rep=as_rep,
            item_id=item_id, version=version, status=400,
        )  # fmt: skip
    body = kind.build(parsed, patient_id, _today().isoformat())
    try:
        await _in_thread(items.update, fhir, caller, kind, item_id, version, body)
    except items.WriteRefusedError as refused:
        text = CHANGED if refused.status in (409, 412) else REFUSED
        message = translator(page_locale(request))(text)
        return _form_page(
            request, caller, kind, raw, {}, patient_id=patient_id, as_rep=as_rep,
            item_id=item_id, version=version, form_error=message, status=409,
        )  # fmt: skip
    return redirect(with_patient(PROFILE_PATH, patient_id, as_rep) + f"#{kind.slug}", SAVED)


@router.get(PROFILE_PATH + "/{slug}/{item_id}/suppression")
def delete_form(
    slug: str,
    item_id: str,
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    fhir: FhirDep,
    pour: str | None = None,
) -> Response:
    """Ask to confirm the deletion of an item."""
    kind = KINDS.get(slug)
    acting = _acting(controls, caller, pour)
    if kind is None or acting is None:
        return not_found_page(request)
    patient_id, as_rep = acting
    item = items.read(fhir, caller.ctx, kind, item_id, patient_id)
    if item is None:
        return not_found_page(request)
    context = {
        "kind": kind,
        "line": kind.line(item, translator(page_locale(request))),
        "action": f"{PROFILE_PATH}/{kind.slug}/{item_id}/suppression",
        "pour": patient_id if as_rep else "",
        "as_representative": as_rep,
        "back": with_patient(PROFILE_PATH, patient_id, as_rep),
    }
    return render(
        request,
        "profile/delete.html",
        context,
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.post(PROFILE_PATH + "/{slug}/{item_id}/suppression")
async def delete(
    slug: str,
    item_id: str,
    request: Request,
    caller: PersonPage,
    controls: ControlsDep,
    fhir: FhirDep,
    pour: Annotated[str, Form()] = "",
) -> Response:
    """Delete the item (the engine keeps its history, as for every deletion)."""
    kind = KINDS.get(slug)
    acting = await run_in_threadpool(_acting, controls, caller, pour)  # reads the store
    if kind is None or acting is None:
        return not_found_page(request)
    patient_id, as_rep = acting
    item = await _in_thread(items.read, fhir, caller, kind, item_id, patient_id)
    if item is None:
        return not_found_page(request)
    try:
        await _in_thread(items.delete, fhir, caller, kind, item_id)
    except items.WriteRefusedError:
        return not_found_page(request)
    return redirect(with_patient(PROFILE_PATH, patient_id, as_rep) + f"#{kind.slug}", DELETED)
