"""A patient's record in the professionals' workspace: the IPS synthesis, documents and results as
the rules allow; search in it; a document's content; depositing a document.

Each page asks the FHIR services as the signed-in professional. A record or a document the
professional may not see, a foreign one (another patient's document under this record's address)
and a missing one all answer ``not_found_page``.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import date
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from carnet.caller import RequestContext
from carnet.dependencies import ControlsDep, EmergencyDep, FhirDep
from carnet.fhir.attachments import BINARY_RESPONSE_HEADERS, content_matches
from carnet.fhir.errors import FhirError
from carnet.fhir.operations.summary import summary
from carnet.fhir.service import FhirService
from carnet.policy.break_glass import EmergencyAccess
from carnet.policy.control_events import ControlError
from carnet.policy.controls import ControlsService
from carnet.web.caller import PageCaller, ProfessionalPage
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.pro import views
from carnet.web.pro.services import options, record_search_of
from carnet.web.router import not_found_page
from carnet.web.templating import render

router = APIRouter(include_in_schema=False)

BASE = "urn:carnet:workspace"
LOINC = "http://loinc.org"
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"  # the national id of professionals (8 + RPPS)
MAX_DEPOSIT_BYTES = 10 * 1024 * 1024
DEPOSIT_TYPES = [
    ("11488-4", N_("Compte rendu de consultation")),
    ("34133-9", N_("Compte rendu d'hospitalisation")),
    ("11502-2", N_("Compte rendu d'examens biologiques")),
    ("18748-4", N_("Compte rendu d'imagerie")),
    ("57833-6", N_("Ordonnance")),
]
DEPOSIT_KINDS = {"application/pdf", "image/jpeg", "image/png"}
MISSING = (403, 404, 410)

DEPOSITED = register_flash("pro.deposited", N_("Le document est déposé dans le dossier."))


def _ctx(
    caller: PageCaller, emergency: EmergencyAccess, patient_id: str
) -> tuple[RequestContext, str | None]:
    """The caller's context for this record: purpose "emergency" while an emergency access of
    theirs lasts (its end, for the banner)."""
    until = emergency.emergency_until(caller.principal, patient_id)
    return (replace(caller.ctx, purpose="emergency") if until else caller.ctx), until


def _record_view(
    fhir: FhirService, ctx: RequestContext, patient_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    patient = fhir.read("Patient", patient_id, ctx=ctx).body or {}
    ips = summary(fhir, ctx, BASE, patient_id)
    docs = fhir.search(
        BASE,
        "DocumentReference",
        [
            ("patient", patient_id),
            ("_sort", "-date"),
            ("_count", "50"),
            ("_include", "DocumentReference:author"),
            ("_include", "DocumentReference:custodian"),
        ],
        ctx=ctx,
    )
    labs = fhir.search(
        BASE,
        "Observation",
        [("patient", patient_id), ("category", "laboratory"), ("_sort", "-date"), ("_count", "30")],
        ctx=ctx,
    )
    listed = [
        e["resource"]
        for e in docs.get("entry") or []
        if (e.get("search") or {}).get("mode") != "include"
    ]
    view = {
        "patient": views.patient_card(patient),
        "sections": views.synthesis(ips),
        "documents": views.documents(docs),
        "results": views.results(labs),
    }
    return view, listed


@router.get("/pro/patients/{patient_id}")
def record_page(
    request: Request,
    patient_id: str,
    caller: ProfessionalPage,
    fhir: FhirDep,
    emergency: EmergencyDep,
    background: BackgroundTasks,
) -> Response:
    """The record as this professional may see it: synthesis, documents, results. The listed
    documents' text is analysed after the answer, so a first search in the record is quick."""
    ctx, until = _ctx(caller, emergency, patient_id)
    try:
        view, listed = _record_view(fhir, ctx, patient_id)
    except FhirError as err:
        if err.status in MISSING:
            return not_found_page(request)
        raise
    background.add_task(record_search_of(request).warm, patient_id, listed)
    return render(
        request,
        "pro/record.html",
        {**view, "emergency_until": until, "query": "", "search": None, "errors": {}},
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.post("/pro/patients/{patient_id}/recherche")
async def search_record(
    request: Request,
    patient_id: str,
    caller: ProfessionalPage,
    emergency: EmergencyDep,
) -> Response:
    """Search in the record (the words in the POST body only; the answer is this page)."""
    form = await request.form()
    raw = form.get("q")
    words = raw.strip() if isinstance(raw, str) else ""
    ctx, until = await run_in_threadpool(_ctx, caller, emergency, patient_id)
    search = record_search_of(request)
    errors: dict[str, str] = {}
    results = None
    try:
        results = await run_in_threadpool(search.search, ctx, patient_id, words)
    except FhirError as err:
        if err.status in MISSING:
            return not_found_page(request)
        if err.status != 400:
            raise
        errors["q"] = N_("Saisissez un à douze mots à chercher (200 caractères au plus).")
    return render(
        request,
        "pro/search.html",
        {
            "patient_id": patient_id,
            "query": words,
            "results": results,
            "errors": errors,
            "emergency_until": until,
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
        status=400 if errors else 200,
    )


@router.get("/pro/patients/{patient_id}/documents/{document_id}")
def document_content(
    request: Request,
    patient_id: str,
    document_id: str,
    caller: ProfessionalPage,
    fhir: FhirDep,
    emergency: EmergencyDep,
) -> Response:
    """A document's content, downloaded (never rendered in the portal's origin)."""
    ctx, _ = _ctx(caller, emergency, patient_id)
    try:
        doc = fhir.read("DocumentReference", document_id, ctx=ctx).body or {}
    except FhirError as err:
        if err.status in MISSING:
            return not_found_page(request)
        raise
    if (doc.get("subject") or {}).get("reference") != f"Patient/{patient_id}":
        return not_found_page(request)  # another record's document under this address
    for content in doc.get("content") or []:
        attachment = content.get("attachment") or {} if isinstance(content, dict) else {}
        if isinstance(attachment.get("data"), str):
            return Response(
                base64.b64decode(attachment["data"]),
                media_type=str(attachment.get("contentType") or "application/octet-stream"),
                headers=BINARY_RESPONSE_HEADERS,
            )
    return not_found_page(request)


@router.get("/pro/patients/{patient_id}/depot")
def deposit_form(
    request: Request,
    patient_id: str,
    caller: ProfessionalPage,
    fhir: FhirDep,
    emergency: EmergencyDep,
) -> Response:
    """The deposit form (only for a record this professional may open)."""
    ctx, until = _ctx(caller, emergency, patient_id)
    try:
        patient = fhir.read("Patient", patient_id, ctx=ctx).body or {}
    except FhirError as err:
        if err.status in MISSING:
            return not_found_page(request)
        raise
    return _deposit_page(request, caller, views.patient_card(patient), {}, {}, until)


def _deposit_page(
    request: Request,
    caller: PageCaller,
    patient: views.PatientCard,
    values: dict[str, str],
    errors: dict[str, str],
    until: str | None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "pro/deposit.html",
        {
            "patient": patient,
            "types": options(request, DEPOSIT_TYPES),
            "values": values,
            "errors": errors,
            "emergency_until": until,
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
        status=status,
    )


@router.post("/pro/patients/{patient_id}/depot")
async def deposit(
    request: Request,
    patient_id: str,
    caller: ProfessionalPage,
    fhir: FhirDep,
    controls: ControlsDep,
    emergency: EmergencyDep,
) -> Response:
    """Deposit a document (type, date, file) with, if asked, the flag that keeps it from the
    patient until it is announced to them."""
    form = await request.form()
    try:
        return await _deposit(request, patient_id, caller, fhir, controls, emergency, form)
    finally:
        await form.close()  # the uploaded file's spooled copy


async def _deposit(
    request: Request,
    patient_id: str,
    caller: PageCaller,
    fhir: FhirService,
    controls: ControlsService,
    emergency: EmergencyAccess,
    form: FormData,
) -> Response:
    ctx, until = await run_in_threadpool(_ctx, caller, emergency, patient_id)
    try:
        patient = (await run_in_threadpool(fhir.read, "Patient", patient_id, ctx=ctx)).body or {}
    except FhirError as err:
        if err.status in MISSING:
            return not_found_page(request)
        raise
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    errors: dict[str, str] = {}
    titles = dict(DEPOSIT_TYPES)
    if values.get("type") not in titles:
        errors["type"] = N_("Choisissez le type du document.")
    try:
        when = date.fromisoformat(values.get("date", ""))
        if when > date.today():
            errors["date"] = N_("La date du document ne peut pas être dans le futur.")
    except ValueError:
        errors["date"] = N_("Saisissez la date du document (jj/mm/aaaa).")
    upload = form.get("file")
    data = b""
    kind = ""
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors["file"] = N_("Choisissez le fichier du document (PDF, JPEG ou PNG).")
    else:
        data = await upload.read(MAX_DEPOSIT_BYTES + 1)
        kind = (upload.content_type or "").split(";")[0].strip().lower()
        if len(data) > MAX_DEPOSIT_BYTES:
            errors["file"] = N_("Le fichier dépasse 10 Mo.")
        elif kind not in DEPOSIT_KINDS or not content_matches(kind, data) or not data:
            errors["file"] = N_("Le fichier doit être un PDF, une image JPEG ou PNG.")
    card = views.patient_card(patient)
    if errors:
        return _deposit_page(request, caller, card, values, errors, until, status=400)
    body = _document(
        patient_id, values["type"], titles[values["type"]], values["date"], kind, data, caller
    )
    hidden = bool(values.get("invisible_patient"))
    try:
        await run_in_threadpool(_store_deposit, fhir, controls, ctx, body, hidden)
    except FhirError as err:
        if err.status in MISSING:
            return not_found_page(request)
        errors["file"] = N_("Ce document ne peut pas être déposé dans ce dossier.")
        return _deposit_page(request, caller, card, values, errors, until, status=err.status)
    except ControlError:
        errors["invisible_patient"] = N_("Ce document ne peut pas être rendu invisible au patient.")
        return _deposit_page(request, caller, card, values, errors, until, status=403)
    return redirect(f"/pro/patients/{patient_id}", DEPOSITED)


def _store_deposit(
    fhir: FhirService,
    controls: ControlsService,
    ctx: RequestContext,
    body: dict[str, Any],
    hidden: bool,
) -> None:
    """The document and, if asked, its invisible-to-the-patient flag, in one transaction (a
    refused flag stores nothing)."""
    fhir.validator.validate(body, "DocumentReference")
    with fhir.session(ctx, "create", "DocumentReference", None) as session:
        created = session.create("DocumentReference", body)
        if hidden:
            controls.hide_from_patient_in(session, created.stored)


def _document(
    patient_id: str,
    type_code: str,
    title: str,
    written: str,
    kind: str,
    data: bytes,
    caller: PageCaller,
) -> dict[str, Any]:
    rpps = caller.principal.rpps or ""
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": LOINC, "code": type_code}], "text": title},
        "subject": {"reference": f"Patient/{patient_id}"},
        "date": f"{written}T12:00:00+00:00",
        "author": [{"identifier": {"system": RPPS_SYSTEM, "value": f"8{rpps}"}}],
        "description": title,
        "content": [
            {
                "attachment": {
                    "contentType": kind,
                    "language": "fr-FR",
                    "data": base64.b64encode(data).decode("ascii"),
                    "size": len(data),
                    "title": title,
                }
            }
        ],
    }
