"""The pages of the medical profile: ``/espace/profil`` lists each kind with its items, and each
kind has a form to add, edit and delete (with a confirmation) an item, POST-redirect-GET.

A representative acts for the person they represent with ``?pour=<patient>`` (and the hidden
field ``pour``): a record the caller neither owns nor represents, an item of another record,
one not declared by the patient, an unknown kind: the same missing page. Every read and write
is the caller's own FHIR interaction, decided by the policy and audited as them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from carnet.dependencies import FhirDep, SettingsDep
from carnet.fhir.service import FhirService
from carnet.form_submission import new_submission
from carnet.web.caller import PageCaller, PersonPage
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.patient_controls.deps import ActedOn, ActedOnDep
from carnet.web.profile import items
from carnet.web.profile.fields import Message, read_form
from carnet.web.profile.kind import JSON, Kind
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


@dataclass(frozen=True)
class _Target:
    """What a page of a kind acts on: the kind, the record, and the item (None: a new one)."""

    kind: Kind
    acted: ActedOn
    item_id: str = ""
    item: JSON | None = None

    @property
    def back(self) -> str:
        return self.acted.path(PROFILE_PATH)


def _back_to_profile(target: _Target, flash: Any) -> Response:
    return redirect(f"{target.back}#{target.kind.slug}", flash)


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
    target: _Target,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    version: str = "",
    form_error: str = "",
    submission: str = "",
    status: int = 200,
) -> Response:
    context = {
        "kind": target.kind,
        "values": values,
        "errors": errors,
        "form_error": form_error,
        "action": f"{PROFILE_PATH}/{target.kind.slug}/{target.item_id or 'ajout'}",
        "item_id": target.item_id,
        "version": version,
        "pour": target.acted.pour,
        "as_representative": target.acted.as_representative,
        "back": target.back,
        "today": _today().isoformat(),
        # an add form's own id; kept when the form comes back with errors (nothing was stored)
        "submission": "" if target.item_id else (submission or new_submission()),
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
    acted: ActedOnDep,
    fhir: FhirDep,
    settings: SettingsDep,
) -> Response:
    """Every kind of the profile with the items the patient declared."""
    patient_id, as_rep = acted.patient_id, acted.as_representative
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


@dataclass(frozen=True)
class _Asked:
    """What a page of a kind was asked: by whom, which kind and item."""

    caller: PageCaller
    fhir: FhirService
    slug: str
    item_id: str

    def target(self, acted: ActedOn, *, editing: bool = True) -> _Target | None:
        """The kind and item asked, on the record ``acted`` on; None (the page answers it as
        missing) for an unknown kind, one not edited by form, an item not of that record."""
        kind = KINDS.get(self.slug)
        if kind is None or (editing and not kind.editable):
            return None
        if not self.item_id:
            return _Target(kind, acted)
        patient_id = acted.patient_id
        item = items.read(self.fhir, self.caller.ctx, kind, self.item_id, patient_id)
        if item is None:
            return None
        return _Target(kind, acted, self.item_id, item)


async def _asked(request: Request, slug: str, caller: PersonPage, fhir: FhirDep) -> _Asked:
    """The kind from the address, and the item: none on ``/ajout``. (The record acted on is
    each page's ``ActedOnDep``: ``pour``, a record not theirs answered as missing.)"""
    return _Asked(caller, fhir, slug, str(request.path_params.get("item_id") or ""))


AskedDep = Annotated[_Asked, Depends(_asked)]


@router.get(PROFILE_PATH + "/{slug}/ajout")
def add_form(request: Request, asked: AskedDep, acted: ActedOnDep) -> Response:
    """The empty form of a kind."""
    target = asked.target(acted)
    if target is None:
        return not_found_page(request)
    values = {field.name: "" for field in target.kind.fields}
    return _form_page(request, asked.caller, target, values, {})


@router.get(PROFILE_PATH + "/{slug}/{item_id}")
def edit_form(request: Request, asked: AskedDep, acted: ActedOnDep) -> Response:
    """The form of one item, filled with what it holds."""
    target = asked.target(acted)
    if target is None or target.item is None:
        return not_found_page(request)
    values = items.values_for_form(target.kind, target.item)
    version = str((target.item.get("meta") or {}).get("versionId") or "")
    return _form_page(request, asked.caller, target, values, {}, version=version)


async def _save(request: Request, asked: _Asked, acted: ActedOn) -> Response:
    """Check the form; store the new item or replace the item (if no one changed it since the
    form was shown); back to the profile (POST-redirect-GET)."""
    form = await request.form()  # read once already by the CSRF check
    target = await run_in_threadpool(asked.target, acted)  # reads the store
    if target is None:
        return not_found_page(request)
    caller, kind, editing = asked.caller, target.kind, bool(target.item_id)
    version = str(form.get("version") or "")[:16] if editing else ""
    submission = "" if editing else str(form.get("envoi") or "")[:32]
    raw, parsed, errors = read_form(kind.fields, form, today=_today())
    if not errors:
        errors.update(kind.check(parsed))
    if errors:
        shown = _messages(request, errors)
        return _form_page(
            request, caller, target, raw, shown, version=version, submission=submission,
            status=400,
        )  # fmt: skip
    body = kind.build(parsed, target.acted.patient_id, _today().isoformat())
    try:
        if editing:
            await _in_thread(items.update, asked, kind, target.item_id, version, body)
        else:
            await _in_thread(items.create, asked, kind, body, submission or None)
    except items.WriteRefusedError as refused:
        changed = editing and refused.status in (409, 412)
        message = translator(page_locale(request))(CHANGED if changed else REFUSED)
        return _form_page(
            request, caller, target, raw, {}, version=version, form_error=message,
            submission=submission, status=409 if editing else 403,
        )  # fmt: skip
    return _back_to_profile(target, SAVED)


async def _in_thread(function: Any, asked: _Asked, *args: Any) -> Any:
    return await run_in_threadpool(function, asked.fhir, asked.caller.ctx, *args)


@router.post(PROFILE_PATH + "/{slug}/ajout")
async def add(request: Request, asked: AskedDep, acted: ActedOnDep) -> Response:
    """Store a new item from the form."""
    return await _save(request, asked, acted)


@router.post(PROFILE_PATH + "/{slug}/{item_id}")
async def edit(request: Request, asked: AskedDep, acted: ActedOnDep) -> Response:
    """Replace an item by the form's values."""
    return await _save(request, asked, acted)


@router.get(PROFILE_PATH + "/{slug}/{item_id}/suppression")
def delete_form(request: Request, asked: AskedDep, acted: ActedOnDep) -> Response:
    """Ask to confirm the deletion of an item."""
    target = asked.target(acted, editing=False)
    if target is None or target.item is None:
        return not_found_page(request)
    context = {
        "kind": target.kind,
        "line": target.kind.line(target.item, translator(page_locale(request))),
        "action": f"{PROFILE_PATH}/{target.kind.slug}/{target.item_id}/suppression",
        "pour": target.acted.pour,
        "as_representative": target.acted.as_representative,
        "back": target.back,
    }
    return render(
        request,
        "profile/delete.html",
        context,
        caller=asked.caller.principal,
        csrf_token=asked.caller.csrf_token,
    )


@router.post(PROFILE_PATH + "/{slug}/{item_id}/suppression")
async def delete(request: Request, asked: AskedDep, acted: ActedOnDep) -> Response:
    """Delete the item (the engine keeps its history, as for every deletion)."""
    target = await run_in_threadpool(asked.target, acted, editing=False)  # reads the store
    if target is None:
        return not_found_page(request)
    try:
        await _in_thread(items.delete, asked, target.kind, target.item_id)
    except items.WriteRefusedError:
        return not_found_page(request)
    return _back_to_profile(target, DELETED)
