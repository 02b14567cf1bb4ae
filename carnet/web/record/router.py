"""The patient's record: documents by class (filters by class, author, dates), a document shown
in a sandboxed frame or downloaded, the synthesis tables, a measurement over time.

Every read is the caller's own FHIR search or read (``ctx=caller.ctx``): the policy and the audit
apply as for the API, and a document the caller may not see (foreign, masked, hidden) answers the
same 404 page as one that does not exist.
"""

from __future__ import annotations

import base64
import binascii
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from carnet.caller import RequestContext
from carnet.dependencies import FhirDep, SettingsDep
from carnet.fhir.errors import FhirError
from carnet.fhir.service import FhirService
from carnet.web.caller import PersonPage
from carnet.web.formatting import format_date, format_decimal
from carnet.web.i18n import N_
from carnet.web.record import clinical, viewer
from carnet.web.record.chart import Point, Series, draw
from carnet.web.record.documents import CLASSES, Filters, authors, grouped, rows
from carnet.web.record.measures import MEASURES, Measure, measure_series
from carnet.web.router import not_found_page
from carnet.web.space import SpaceLink, register_space_link
from carnet.web.templating import page_locale, render, translator

router = APIRouter(include_in_schema=False)

MISSING = (403, 404, 410)  # foreign, hidden, missing or deleted: one answer
VIEWABLE = ("application/pdf", "image/jpeg", "image/png")
MAX_LISTED = 500

register_space_link(
    SpaceLink(
        "/dossier",
        N_("Mes documents"),
        N_(
            "Comptes rendus, ordonnances, imagerie : triés par classe, du plus récent au plus ancien."
        ),
        order=10,
    )
)
register_space_link(
    SpaceLink(
        "/dossier/synthese",
        N_("Ma synthèse"),
        N_("Résultats d'analyses, vaccinations, allergies, traitements et problèmes de santé."),
        order=20,
    )
)


def _search(
    fhir: FhirService,
    base: str,
    ctx: RequestContext,
    res_type: str,
    params: list[tuple[str, str]],
    attachment_data: bool = True,
) -> dict[str, Any]:
    return fhir.search(
        base,
        res_type,
        [*params, ("_count", str(MAX_LISTED))],
        attachment_data=attachment_data,
        ctx=ctx,
    )


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@router.get("/dossier")
async def documents(
    request: Request, caller: PersonPage, fhir: FhirDep, settings: SettingsDep
) -> Response:
    """The documents of the person's record, grouped by class, newest first, filterable."""
    query = request.query_params
    filters = Filters(
        class_code=query.get("classe", "") if query.get("classe", "") in CLASSES else "",
        author=query.get("auteur", "")[:200],
        since=_day(query.get("du")),
        until=_day(query.get("au")),
    )
    bundle = await run_in_threadpool(
        _search,
        fhir,
        settings.fhir_base_url,
        caller.ctx,
        "DocumentReference",
        [
            ("patient", caller.patient_id or ""),
            ("_sort", "-date"),
            ("_include", "DocumentReference:author"),
        ],
        False,  # a list: the files are neither read nor decrypted (one link each to its page)
    )
    every = rows(bundle)
    shown = [r for r in every if filters.keeps(r)]
    gettext = translator(page_locale(request))
    context = {
        "groups": grouped(shown),
        "classes": CLASSES,
        "classes_options": [(code, gettext(label)) for code, label in CLASSES.items()],
        "authors": authors(every),
        "filters": filters,
        "total": len(every),
        "shown": len(shown),
    }
    return render(
        request,
        "record/documents.html",
        context,
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


def _read_document(fhir: FhirService, doc_id: str, ctx: RequestContext) -> dict[str, Any] | None:
    try:
        stored = fhir.read("DocumentReference", doc_id, ctx=ctx)
    except FhirError as exc:
        if exc.status in MISSING:
            return None
        raise
    return stored.body


@router.get("/dossier/documents/{doc_id}")
async def document(doc_id: str, request: Request, caller: PersonPage, fhir: FhirDep) -> Response:
    """One document: its details, shown inline in a sandboxed frame when it is a PDF or an image."""
    body = await run_in_threadpool(_read_document, fhir, doc_id[:64], caller.ctx)
    if body is None:
        return not_found_page(request)
    found = rows({"entry": [{"resource": body}]})[0]
    context = {"doc": found, "viewable": found.content_type in VIEWABLE, "classes": CLASSES}
    return render(
        request,
        "record/document.html",
        context,
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.get("/dossier/documents/{doc_id}/contenu")
async def document_content(
    doc_id: str, request: Request, caller: PersonPage, fhir: FhirDep
) -> Response:
    """The document's bytes: inline (for the portal's own sandboxed frame) or as a download."""
    body = await run_in_threadpool(_read_document, fhir, doc_id[:64], caller.ctx)
    if body is None:
        return not_found_page(request)
    attachment = (body.get("content") or [{}])[0].get("attachment", {})
    try:
        data = base64.b64decode(attachment.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        return not_found_page(request)
    content_type = str(attachment.get("contentType") or "application/octet-stream")
    download = "telecharger" in request.query_params or content_type not in VIEWABLE
    extension = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}
    filename = f"document-{doc_id[:64]}.{extension.get(content_type, 'bin')}"
    disposition = "attachment" if download else "inline"
    return Response(
        data,
        media_type=content_type if content_type in VIEWABLE else "application/octet-stream",
        headers={
            "Content-Disposition": f'{disposition}; filename="{filename}"',
            # Shown only inside the portal's sandboxed frame; runs nothing, loads nothing.
            "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self' data:; "
            "style-src 'unsafe-inline'; frame-ancestors 'self'",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


PAGE_LABEL = N_("Page %(number)d sur %(count)d")
MORE_PAGES = N_("Les pages suivantes sont dans le document téléchargé.")


@router.get("/dossier/documents/{doc_id}/apercu")
async def document_view(
    doc_id: str, request: Request, caller: PersonPage, fhir: FhirDep
) -> Response:
    """A PDF's pages as images, for the portal's sandboxed frame (no script, no PDF viewer)."""
    body = await run_in_threadpool(_read_document, fhir, doc_id[:64], caller.ctx)
    if body is None:
        return not_found_page(request)
    attachment = (body.get("content") or [{}])[0].get("attachment", {})
    if attachment.get("contentType") != "application/pdf":
        return not_found_page(request)
    try:
        data = base64.b64decode(attachment.get("data", ""), validate=True)
        images, count = await run_in_threadpool(viewer.page_images, data)
    except (binascii.Error, ValueError):
        return not_found_page(request)
    locale = page_locale(request)
    gettext = translator(locale)
    html = viewer.view_page(
        images, count, lang=locale, page_label=gettext(PAGE_LABEL), more=gettext(MORE_PAGES)
    )
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": viewer.VIEW_CSP,
            "Content-Disposition": 'inline; filename="apercu.html"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.get("/dossier/synthese")
async def synthesis(
    request: Request, caller: PersonPage, fhir: FhirDep, settings: SettingsDep
) -> Response:
    """Latest results, vaccinations, allergies, current treatments, conditions."""
    base, patient = settings.fhir_base_url, caller.patient_id or ""
    count = ("_count", str(MAX_LISTED))

    def gather() -> dict[str, Any]:
        # Six searches in one interaction (one transaction, one commit of their six audit
        # events): each is checked and recorded as its own API call would be.
        with caller.fhir_session(fhir, "search", "Observation") as session:
            found = {
                res_type: clinical.resources(
                    session.search(base, res_type, [("patient", patient), *extra, count]),
                    res_type,
                )
                for res_type, extra in (
                    ("Observation", [("category", "laboratory")]),
                    ("Immunization", []),
                    ("AllergyIntolerance", []),
                    ("MedicationRequest", []),
                    ("MedicationStatement", []),
                    ("Condition", []),
                )
            }
        return {
            "results": clinical.latest_results(found["Observation"]),
            "vaccinations": clinical.vaccinations(found["Immunization"]),
            "allergies": clinical.allergies(found["AllergyIntolerance"]),
            "treatments": clinical.treatments(
                found["MedicationRequest"] + found["MedicationStatement"]
            ),
            "conditions": clinical.conditions(found["Condition"]),
            "measures": MEASURES,
        }

    context = await run_in_threadpool(gather)
    return render(
        request,
        "record/synthesis.html",
        context,
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.get("/dossier/mesures/{name}")
async def measurement(
    name: str, request: Request, caller: PersonPage, fhir: FhirDep, settings: SettingsDep
) -> Response:
    """A measurement over time: the chart, and the same values as a table."""
    measure: Measure | None = MEASURES.get(name)
    if measure is None:
        return not_found_page(request)
    params = [
        ("patient", caller.patient_id or ""),
        ("code", measure.search_codes),
        ("_sort", "date"),
    ]
    bundle = await run_in_threadpool(
        _search, fhir, settings.fhir_base_url, caller.ctx, "Observation", params
    )
    locale = page_locale(request)
    gettext = translator(locale)
    series, band, unit = measure_series(measure, clinical.resources(bundle, "Observation"))
    named = [Series(gettext(s.name), s.points) for s in series]
    title = gettext(measure.title)
    table = _table(named)
    count = len(table)  # one measurement a day (a blood pressure is one, with two values)
    description = gettext(N_("%(count)d mesures, du %(first)s au %(last)s.")) % {
        "count": count,
        "first": format_date(min((p.day for s in named for p in s.points), default=None), locale),
        "last": format_date(max((p.day for s in named for p in s.points), default=None), locale),
    }
    svg = draw(
        named,
        title=title,
        description=description,
        band=band,
        number=lambda v: format_decimal(v, locale),
        day_label=lambda d: format_date(d, locale),
    )
    context = {
        "measure": measure,
        "svg": svg,
        "table": table,
        "series": named,
        "unit": unit,
        "band": band,
        "description": description,
    }
    return render(
        request,
        "record/measure.html",
        context,
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


def _table(series: list[Series]) -> list[tuple[date, list[float | None]]]:
    """One row per day: each series' value that day (None where it has none), newest first."""
    days = sorted({p.day for s in series for p in s.points}, reverse=True)
    by_series = [{p.day: p.value for p in s.points} for s in series]
    return [(day, [values.get(day) for values in by_series]) for day in days]


__all__ = ["Point", "router"]
