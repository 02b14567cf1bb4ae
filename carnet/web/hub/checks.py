"""The output checkers' pages: the queue of release requests, one request with the automatic
control's result per cell (suppressed and why, or rounded), its record in ACRO's results.json
(for SACRO-Viewer), and the decision. Two independent checkers: never the requester or a member
of the project's team, one decision each; the service refuses otherwise (audited) and the page
says why.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from carnet.dependencies import HubDep
from carnet.hub.disclosure.profiles import PRESETS
from carnet.hub.errors import HubError
from carnet.hub.releases import PENDING, Release
from carnet.hub.wiring import HubServices
from carnet.web.flash import redirect, register_flash
from carnet.web.hub.caller import CheckerPage, HubCaller
from carnet.web.hub.common import hub_page
from carnet.web.hub.forms import STATISTICS, text_of
from carnet.web.i18n import N_
from carnet.web.router import not_found_page
from carnet.web.security import page_headers

router = APIRouter(include_in_schema=False)

DECIDED = register_flash("hub.checked", N_("Votre décision est enregistrée."))
NOT_INDEPENDENT = N_(
    "Vous avez demandé cette diffusion ou faites partie de l'équipe du projet : deux autres "
    "vérificateurs contrôlent."
)
ALREADY_DECIDED = N_("Vous avez déjà rendu votre décision sur cette demande.")
NOT_PENDING = N_("Cette demande n'attend plus de décision.")
CHECK_LABELS = {
    "MinimumThresholdCheck": N_("effectif sous le seuil"),
    "PresenceOfZeroCheck": N_("case vide"),
    "NKCheck": N_("dominance (règle N-K)"),
    "PPercentCheck": N_("règle du p %"),
}


@dataclass(frozen=True)
class CellView:
    """One cell as the checker sees it: the released value, or the checks that suppressed it."""

    value: Any
    failed: tuple[str, ...]


def cell_grid(
    release: Release,
) -> tuple[str, list[str], list[tuple[str, list[CellView], Any]], dict[str, Any] | None]:
    """The controlled table: its row variable, its columns, per row each cell's outcome and the
    row's total, and the totals line (from the record's per-cell outcome and the released values,
    totals recomputed from them; no true count exists here)."""
    record, lines = release.record or {}, list(release.released_table or [])
    outcome: dict[str, dict[str, str]] = record.get("outcome", {})
    columns = list(outcome)
    row_name = str(release.request.get("rows", ""))
    totals = lines.pop() if release.request.get("statistic") == "count" and lines else None
    grid = []
    for line in lines:
        row = str(line.get(row_name))
        cells = []
        for column in columns:
            text = outcome[column].get(row, "ok")
            failed = tuple(p.strip() for p in text.split(";") if p.strip() not in ("", "ok"))
            cells.append(CellView(line.get(column), failed))
        grid.append((row, cells, line.get("total")))
    return row_name, columns, grid, totals


def _independent(hub: HubServices, caller: HubCaller, release: Release) -> bool:
    permit = hub.permits.get(release.permit_id)
    return caller.subject != release.requester and caller.subject not in permit.members


@router.get("/recherche/controle")
def queue(request: Request, caller: CheckerPage, hub: HubDep) -> Response:
    """Release requests that passed the gates, those awaiting decisions first."""
    rows = []
    for release in hub.releases.queue(caller.ctx):
        decided = any(
            r.checker == caller.subject for r in hub.releases.reviews_of(release.release_id)
        )
        rows.append((release, _independent(hub, caller, release), decided))
    return hub_page(request, caller, "hub/check_queue.html", {"rows": rows})


def _viewable(hub: HubServices, caller: HubCaller, release_id: str) -> Release | None:
    try:
        release = hub.releases.view(caller.ctx, release_id)
    except HubError:
        return None
    return None if release.record is None else release


def _check_page(
    request: Request,
    caller: HubCaller,
    hub: HubServices,
    release: Release,
    *,
    refusal: str | None = None,
    status: int = 200,
) -> Response:
    reviews = hub.releases.reviews_of(release.release_id)
    row_name, columns, grid, totals = cell_grid(release)
    profile = PRESETS.get(release.profile or "")
    return hub_page(
        request,
        caller,
        "hub/check.html",
        {
            "release": release,
            "permit": hub.permits.get(release.permit_id),
            "reviews": reviews,
            "row_name": row_name,
            "columns": columns,
            "grid": grid,
            "totals": totals,
            "suppressed": sum(1 for _, cells, _ in grid for cell in cells if cell.failed),
            "profile": profile,
            "check_labels": CHECK_LABELS,
            "statistic_labels": STATISTICS,
            "independent": _independent(hub, caller, release),
            "decided": any(r.checker == caller.subject for r in reviews),
            "pending": release.state == PENDING,
            "refusal": refusal,
            "texts": {"not_independent": NOT_INDEPENDENT, "decided": ALREADY_DECIDED},
        },
        status=status,
    )


@router.get("/recherche/controle/{release_id}")
def release_check(request: Request, caller: CheckerPage, hub: HubDep, release_id: str) -> Response:
    """One request: the automatic control per cell, the decisions so far, the decision form."""
    release = _viewable(hub, caller, release_id)
    if release is None:
        return not_found_page(request)
    return _check_page(request, caller, hub, release)


@router.post("/recherche/controle/{release_id}")
async def decide(request: Request, caller: CheckerPage, hub: HubDep, release_id: str) -> Response:
    """Approve or refuse, with a comment (written into the record's comments)."""
    form = await request.form()
    decision, comment = text_of(form, "decision"), text_of(form, "comment")

    def answer() -> Response:
        release = _viewable(hub, caller, release_id)
        if release is None:
            return not_found_page(request)
        try:
            hub.releases.review(caller.ctx, release_id, decision, comment or None)
        except HubError as exc:
            mine = [r for r in hub.releases.reviews_of(release_id) if r.checker == caller.subject]
            refusal = NOT_INDEPENDENT if exc.status == 403 else NOT_PENDING
            if mine:
                refusal = ALREADY_DECIDED
            again = hub.releases.get(release_id)
            return _check_page(request, caller, hub, again, refusal=refusal, status=exc.status)
        return redirect(f"/recherche/controle/{release_id}", DECIDED)

    return await run_in_threadpool(answer)


@router.get("/recherche/controle/{release_id}/results.json")
def results_record(request: Request, caller: CheckerPage, hub: HubDep, release_id: str) -> Response:
    """The request's record in ACRO's results.json format, to open in SACRO-Viewer."""
    if _viewable(hub, caller, release_id) is None:
        return not_found_page(request)
    document = hub.releases.results_json(caller.ctx, release_id)
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={
            **page_headers(),
            "Content-Disposition": 'attachment; filename="results.json"',
        },
    )


@router.get("/recherche/controle/{release_id}/sacro.zip")
def sacro_folder(request: Request, caller: CheckerPage, hub: HubDep, release_id: str) -> Response:
    """The request's SACRO folder as a zip: results.json beside the released table it names,
    to unzip and open in SACRO-Viewer."""
    if _viewable(hub, caller, release_id) is None:
        return not_found_page(request)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in hub.releases.sacro_files(caller.ctx, release_id).items():
            archive.writestr(f"{release_id}/{name}", content)
    return Response(
        out.getvalue(),
        media_type="application/zip",
        headers={
            **page_headers(),
            "Content-Disposition": f'attachment; filename="sacro-{release_id}.zip"',
        },
    )
