"""The access history pages: filter, read, export as CSV, verify an entry, download its proof."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from carnet.audit.inclusion import Inclusion
from carnet.record.history import KINDS, HistoryFilter, HistoryUnavailableError, as_csv
from carnet.web.caller import PersonPage
from carnet.web.formatting import PARIS
from carnet.web.i18n import N_
from carnet.web.patient_controls import labels
from carnet.web.patient_controls.deps import ActedOnDep, HistoryDep
from carnet.web.patient_controls.forms import translated_errors
from carnet.web.router import not_found_page
from carnet.web.security import page_headers
from carnet.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 100  # rows on a page (each date is formatted in Python); the CSV holds them all
BAD_DATE = N_("Saisissez une date au format jj/mm/aaaa ou aaaa-mm-jj.")


def _day(text: str | None) -> date | None:
    """A day typed by a person (2025-03-12 from a date field, or 12/03/2025)."""
    if not text:
        return None
    text = text.strip()
    if "/" in text:
        day, month, year = text.split("/")
        return date(int(year), int(month), int(day))
    return date.fromisoformat(text)


def _filter(
    du: str | None, au: str | None, professionnel: str | None, motif: str | None
) -> tuple[HistoryFilter, dict[str, str]]:
    errors: dict[str, str] = {}
    bounds: dict[str, datetime | None] = {}
    for name, text, shift in (("du", du, 0), ("au", au, 1)):
        try:
            day = _day(text)
        except ValueError:
            errors[name] = BAD_DATE
            day = None
        # a day in Paris, from its first instant (``au``: up to the end of that day)
        bounds[name] = (
            None
            if day is None
            else datetime.combine(day + timedelta(days=shift), time(), PARIS).astimezone(UTC)
        )
    kind = motif if motif in KINDS else None
    wanted = HistoryFilter(bounds["du"], bounds["au"], (professionnel or "").strip() or None, kind)
    return wanted, errors


@router.get("/espace/historique")
def history_page(
    request: Request,
    caller: PersonPage,
    history: HistoryDep,
    acted: ActedOnDep,
    du: str | None = None,
    au: str | None = None,
    professionnel: str | None = None,
    motif: str | None = None,
    page: int = 1,
) -> Response:
    """Twelve months of accesses, newest first, filterable, 100 a page; each with "Vérifier"."""
    try:
        wanted, errors = _filter(du, au, professionnel, motif)
        page = max(1, page)
        entries, total = history.page(caller.ctx, acted.patient_id, wanted, page, PER_PAGE)
        pages = max(1, -(-total // PER_PAGE))
        if page > pages:  # past the end (an old link): the last page
            page = pages
            entries, total = history.page(caller.ctx, acted.patient_id, wanted, page, PER_PAGE)
    except HistoryUnavailableError:
        return not_found_page(request)
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    query = urlencode(kept)
    csv_path = "/espace/historique.csv" + (f"?{query}" if query else "")

    def page_path(number: int) -> str:
        return "/espace/historique?" + urlencode([*kept, ("page", str(number))])

    return render(
        request,
        "patient_controls/history.html",
        {
            "entries": entries,
            "first_number": (page - 1) * PER_PAGE + 1,  # the entries' numbers, for the links
            "total": total,
            "page": page,
            "pages": pages,
            "page_path": page_path,
            "errors": translated_errors(request, errors),
            "filters": {"du": du or "", "au": au or "", "professionnel": professionnel or ""},
            "motif": motif or "",
            "kinds": labels.KIND_FILTERS,
            "labels": labels,
            "pour": acted.pour,
            "as_representative": acted.as_representative,
            "csv_path": csv_path,
            "entry_path": lambda event_id: acted.path(f"/espace/historique/{event_id}"),
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
        status=400 if errors else 200,
    )


@router.get("/espace/historique.csv")
def history_csv(
    request: Request,
    caller: PersonPage,
    history: HistoryDep,
    acted: ActedOnDep,
    du: str | None = None,
    au: str | None = None,
    professionnel: str | None = None,
    motif: str | None = None,
) -> Response:
    """The same entries as the page, as CSV (``;``, UTF-8 with BOM for spreadsheets)."""
    try:
        wanted, errors = _filter(du, au, professionnel, motif)
        if errors:
            return not_found_page(request)
        entries = history.entries(caller.ctx, acted.patient_id, wanted)
    except HistoryUnavailableError:
        return not_found_page(request)
    return Response(
        "\ufeff" + as_csv(entries),
        media_type="text/csv; charset=utf-8",
        headers={
            **page_headers(),
            "Content-Disposition": 'attachment; filename="historique-des-acces.csv"',
        },
    )


@router.get("/espace/historique/{event_id}")
def entry_page(
    event_id: str,
    request: Request,
    caller: PersonPage,
    history: HistoryDep,
    acted: ActedOnDep,
) -> Response:
    """ "Vérifier": the entry's inclusion proof checked against the signed checkpoint."""
    try:
        check = history.verify(caller.ctx, acted.patient_id, event_id[:64])
    except HistoryUnavailableError:
        return not_found_page(request)
    return render(
        request,
        "patient_controls/entry.html",
        {
            "event_id": event_id,
            "check": check,
            "verified": check.result is Inclusion.VERIFIED,
            "message": labels.VERIFICATION[check.result.value],
            "proof_path": acted.path(f"/espace/historique/{event_id}/preuve"),
            "back": acted.path("/espace/historique"),
            "as_representative": acted.as_representative,
        },
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.get("/espace/historique/{event_id}/preuve")
def entry_proof(
    event_id: str,
    request: Request,
    caller: PersonPage,
    history: HistoryDep,
    acted: ActedOnDep,
) -> Response:
    """The entry's proof file (NDJSON) for the independent verifier of docs/audit.md."""
    try:
        proof = history.proof(caller.ctx, acted.patient_id, event_id[:64])
    except HistoryUnavailableError:
        return not_found_page(request)
    return Response(
        proof,
        media_type="application/fhir+ndjson",
        headers={
            **page_headers(),
            "Content-Disposition": f'attachment; filename="preuve-{event_id[:64]}.ndjson"',
        },
    )
