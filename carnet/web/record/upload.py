"""A person adds a document to their record: a PDF, JPEG or PNG (recognised by its first bytes,
not by what the browser claims), with its class and date, stored as a DocumentReference the
person authored (the FHIR engine records the author from the caller)."""

from __future__ import annotations

import base64
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from carnet.caller import RequestContext
from carnet.dependencies import FhirDep, SettingsDep
from carnet.fhir.errors import FhirError
from carnet.fhir.service import FhirService
from carnet.settings import Settings
from carnet.web.caller import PageCaller, PersonPage
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.profile.declared import DECLARED_TAG
from carnet.web.record.documents import CLASS_SYSTEM, CLASSES
from carnet.web.templating import page_locale, render, translator

router = APIRouter(include_in_schema=False)

UPLOAD_PATH = "/dossier/depot"
LOINC = "http://loinc.org"
ADDED = register_flash("document-added", N_("Votre document est ajouté à votre dossier."))
SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
NO_FILE = N_("Choisissez un fichier.")
WRONG_KIND = N_("Ce fichier n'est ni un PDF, ni une image JPEG ou PNG.")
TOO_BIG = N_("Ce fichier dépasse la taille permise (%(megabytes)s Mo).")
BAD_DATE = N_("Saisissez une date valable, qui n'est pas dans le futur.")
BAD_CLASS = N_("Choisissez une classe dans la liste.")
REQUIRED = N_("Ce champ est obligatoire.")
REFUSED = N_("Votre dossier n'accepte pas de nouveau document pour l'instant.")
# A document of a kind the medical profile lists (carnet/web/profile): its LOINC type and title.
NATURES = {
    "directives-anticipees": (
        "42348-3",
        "Advance healthcare directives",
        N_("Directives anticipées"),
    ),
}


def sniff(head: bytes) -> str | None:
    """The content type the bytes themselves show, among the accepted ones."""
    return next((kind for magic, kind in SIGNATURES if head.startswith(magic)), None)


def _options(request: Request) -> list[tuple[str, str]]:
    gettext = translator(page_locale(request))
    return [(code, gettext(label)) for code, label in CLASSES.items()]


def _form_page(
    request: Request,
    caller: Any,
    values: dict[str, str],
    errors: dict[str, str],
    limit: int,
    status: int = 200,
) -> Response:
    context = {
        "values": values,
        "nature_title": NATURES[values["nature"]][2] if values.get("nature") in NATURES else "",
        "errors": errors,
        "class_options": _options(request),
        "megabytes": f"{limit / 1048576:.0f}",
        "today": date.today().isoformat(),
    }
    return render(
        request,
        "record/upload.html",
        context,
        caller=caller.principal,
        csrf_token=caller.csrf_token,
        status=status,
    )


def _type(values: dict[str, str]) -> dict[str, Any]:
    """The document's type: its title, coded when it is of a nature the profile lists."""
    if values["nature"] not in NATURES:
        return {"text": values["titre"]}
    code, display, _ = NATURES[values["nature"]]
    return {
        "coding": [{"system": LOINC, "code": code, "display": display}],
        "text": values["titre"],
    }


@router.get(UPLOAD_PATH)
def upload_form(request: Request, caller: PersonPage, settings: SettingsDep) -> Response:
    """The upload form (``?nature=``: a document the medical profile lists, such as advance
    directives)."""
    nature = request.query_params.get("nature", "")
    values = {"classe": "", "date": "", "titre": "", "nature": ""}
    if nature in NATURES:
        values.update(
            nature=nature,
            classe="autres",
            titre=translator(page_locale(request))(NATURES[nature][2]),
        )
    return _form_page(request, caller, values, {}, settings.max_upload_bytes)


def _create(fhir: FhirService, ctx: RequestContext, body: dict[str, Any]) -> str | None:
    try:
        return fhir.create("DocumentReference", body, ctx=ctx).stored.res_id
    except FhirError as exc:
        if exc.status in (403, 409, 422):
            return None
        raise


@router.post(UPLOAD_PATH)
async def upload(
    request: Request, caller: PersonPage, fhir: FhirDep, settings: SettingsDep
) -> Response:
    """Check the file, its class and date; add it; then show it (POST-redirect-GET)."""
    form = await request.form()  # read once already by the CSRF check
    try:
        return await _upload(request, caller, fhir, settings, form)
    finally:
        await form.close()  # the spooled file goes now, not at garbage collection


async def _upload(
    request: Request, caller: PageCaller, fhir: FhirService, settings: Settings, form: FormData
) -> Response:
    gettext = translator(page_locale(request))
    values = {
        name: str(form.get(name) or "").strip()[:200]
        for name in ("classe", "date", "titre", "nature")
    }
    if values["nature"] not in NATURES:
        values["nature"] = ""
    errors: dict[str, str] = {}
    file = form.get("fichier")
    data = b""
    if not isinstance(file, UploadFile) or not file.filename:
        errors["fichier"] = gettext(NO_FILE)
    else:
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            errors["fichier"] = gettext(TOO_BIG) % {
                "megabytes": f"{settings.max_upload_bytes / 1048576:.0f}"
            }
        elif sniff(data[:16]) is None:
            errors["fichier"] = gettext(WRONG_KIND)
    if values["classe"] not in CLASSES:
        errors["classe"] = gettext(BAD_CLASS if values["classe"] else REQUIRED)
    try:
        day = date.fromisoformat(values["date"])
        if day > date.today():
            raise ValueError
    except ValueError:
        errors["date"] = gettext(BAD_DATE if values["date"] else REQUIRED)
    if not values["titre"]:
        errors["titre"] = gettext(REQUIRED)
    if errors:
        return _form_page(request, caller, values, errors, settings.max_upload_bytes, status=400)
    kind = sniff(data[:16]) or "application/octet-stream"
    body: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {"tag": [DECLARED_TAG]},  # added by the person: marked for professionals
        "status": "current",
        "type": _type(values),
        "category": [{"coding": [{"system": CLASS_SYSTEM, "code": values["classe"]}]}]
        if values["classe"] in CLASSES and values["classe"] != "autres"
        else [],
        "subject": {"reference": f"Patient/{caller.patient_id}"},
        "date": f"{values['date']}T12:00:00Z",
        "description": values["titre"],
        "content": [
            {
                "attachment": {
                    "contentType": kind,
                    "data": base64.b64encode(data).decode(),
                    "size": len(data),
                }
            }
        ],
    }
    if not body["category"]:
        del body["category"]
    made = await run_in_threadpool(_create, fhir, caller.ctx, body)
    if made is None:
        return _form_page(
            request,
            caller,
            values,
            {"fichier": gettext(REFUSED)},
            settings.max_upload_bytes,
            status=403,
        )
    return redirect(f"/dossier/documents/{made}", ADDED)
