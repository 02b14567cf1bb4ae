"""The researcher's pages: my projects, a new application, the project's page (its clock, its
steps, and once active the workspace: read-only SQL on the extract, shown as a table in the page,
never as a download), release requests and the results' address.

Every page runs as the signed-in account (``ResearcherPage``, ``HubMemberPage``) and calls the
hub's services, which check membership, roles and states and audit each step. A project the
caller is not in answers like a project that does not exist. SQL travels in POST bodies and the
query's rows are the answer to that POST (``no-store``), never a page one could link to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from carnet.dependencies import HubDep
from carnet.form_submission import SUBMISSION_ID, new_submission
from carnet.hub.disclosure.profiles import PRESETS, choosable_profiles
from carnet.hub.errors import HubError
from carnet.hub.permits import Permit
from carnet.hub.releases import table_request
from carnet.hub.wiring import HubServices
from carnet.hub.workspace import QueryResult
from carnet.web.flash import redirect, register_flash
from carnet.web.hub.caller import HubCaller, HubMemberPage, ResearcherPage
from carnet.web.hub.common import clock_of, hub_page
from carnet.web.hub.forms import (
    DATE_HANDLING,
    DEIDENTIFICATION,
    STATISTICS,
    application_values,
    new_application_values,
    read_application,
    text_of,
)
from carnet.web.i18n import N_
from carnet.web.router import not_found_page

router = APIRouter(include_in_schema=False)

DRAFT_SAVED = register_flash("hub.draft", N_("Votre demande est enregistrée comme brouillon."))
SUBMITTED = register_flash(
    "hub.submitted", N_("Votre demande est déposée : la décision est due sous trois mois.")
)
ACTIVATED = register_flash(
    "hub.activated", N_("Le projet est ouvert : vous en avez accepté les conditions.")
)
STEP_REFUSED = register_flash(
    "hub.step-refused",
    N_("Cette étape n'est pas possible dans l'état actuel de la demande."),
    "error",
)
RELEASE_ASKED = register_flash(
    "hub.release", N_("Votre demande de diffusion est transmise aux vérificateurs.")
)
RELEASE_GATED = register_flash(
    "hub.release-gated",
    N_("Les contrôles automatiques ont refusé ce tableau : les motifs sont ci-dessous."),
    "error",
)
RESULTS_SAVED = register_flash("hub.results", N_("L'adresse des résultats figure au registre."))
RESULTS_REFUSED = register_flash(
    "hub.results-refused", N_("L'adresse des résultats est une adresse https."), "error"
)
APPLICANT_STEPS = {"soumettre": "submit", "activer": "activate"}
RELEASE_FIELDS = ("release_sql", "rows", "columns", "statistic", "value", "profile")


@router.get("/recherche")
def hub_home(request: Request, caller: HubMemberPage, hub: HubDep) -> Response:
    """The hub's home for its members: one's projects, and the queues one's roles open."""
    permits = hub.permits.visible_to(caller.ctx)
    mine = [(p, clock_of(p)) for p in permits if caller.subject in p.members]
    return hub_page(request, caller, "hub/home.html", {"rows": mine})


@router.get("/recherche/demande")
def new_application(request: Request, caller: ResearcherPage) -> Response:
    """The application form (every field of EHDS art. 67)."""
    return _application_page(request, caller, new_application_values(), {}, new_submission())


def _submission_of(form: Mapping[str, Any]) -> str:
    """The form's own submission id (hidden field ``envoi``); a malformed one is none."""
    sent = text_of(form, "envoi")
    return sent if SUBMISSION_ID.fullmatch(sent) else ""


@router.post("/recherche/demande")
async def save_application(request: Request, caller: ResearcherPage, hub: HubDep) -> Response:
    """Store the application as a draft of a new project (the applicant and the team named);
    the same form sent twice stores one draft."""
    form = await request.form()
    read, submission = read_application(form), _submission_of(form)
    if read.application is None:
        return _application_page(
            request, caller, read.values, read.errors, submission or new_submission(), status=400
        )
    permit = await run_in_threadpool(
        hub.permits.apply, caller.ctx, read.application, submission or None
    )
    return redirect(f"/recherche/projets/{permit.permit_id}", DRAFT_SAVED)


def _application_page(
    request: Request,
    caller: HubCaller,
    values: dict[str, str],
    errors: dict[str, str],
    submission: str,
    status: int = 200,
) -> Response:
    return hub_page(
        request,
        caller,
        "hub/application.html",
        {
            "values": values,
            "errors": errors,
            "submission": submission,
            "deidentification": list(DEIDENTIFICATION.items()),
            "date_handling": list(DATE_HANDLING.items()),
            "profiles": [(name, name) for name in sorted(PRESETS)],
        },
        status=status,
    )


def _member_permit(hub: HubServices, caller: HubCaller, permit_id: str) -> Permit | None:
    """The project's permit if the caller is in its team; None (refusal audited) otherwise."""
    try:
        permit = hub.permits.view(caller.ctx, permit_id)
    except HubError:
        return None
    if caller.subject not in permit.members:
        hub.permits.refuse(caller.ctx, "project-read", permit_id, 404, "not in the project")
        return None
    return permit


def _project_page(
    request: Request,
    caller: HubCaller,
    hub: HubServices,
    permit: Permit,
    *,
    query: QueryResult | None = None,
    sql: str = "",
    query_error: str | None = None,
    release_values: dict[str, str] | None = None,
    release_errors: dict[str, str] | None = None,
    release_submission: str = "",
    status: int = 200,
) -> Response:
    releases = hub.releases.for_permit(caller.ctx, permit.permit_id)
    has_extract = hub.extracts.latest_extract(permit.permit_id) is not None
    values = release_values or {"release_sql": sql, "statistic": "count"}
    return hub_page(
        request,
        caller,
        "hub/project.html",
        {
            "permit": permit,
            "application": permit.application,
            "listed": application_values(permit.application),
            "clock": clock_of(permit),
            "is_applicant": caller.subject == permit.applicant,
            "has_extract": has_extract,
            "releases": releases,
            "query": query,
            "sql": sql,
            "query_error": query_error,
            "release_values": values,
            "release_errors": release_errors or {},
            "release_submission": release_submission or new_submission(),
            "statistics": list(STATISTICS.items()),
            "profiles": choosable_profiles(permit.application.disclosure_profile),
            "profile_pairs": [
                (name, name) for name in choosable_profiles(permit.application.disclosure_profile)
            ],
            "deidentification_labels": DEIDENTIFICATION,
            "date_labels": DATE_HANDLING,
        },
        status=status,
    )


@router.get("/recherche/projets/{permit_id}")
def project(request: Request, caller: HubMemberPage, hub: HubDep, permit_id: str) -> Response:
    """The project's page for its team; anyone else meets the missing page."""
    permit = _member_permit(hub, caller, permit_id)
    if permit is None:
        return not_found_page(request)
    return _project_page(request, caller, hub, permit)


@router.post("/recherche/projets/{permit_id}/etapes/{step}")
def applicant_step(caller: HubMemberPage, hub: HubDep, permit_id: str, step: str) -> Response:
    """The applicant's steps: submit the draft, activate the approved permit (accepting its
    conditions). The service checks who and from which state (refusals audited)."""
    target = f"/recherche/projets/{permit_id}"
    if step not in APPLICANT_STEPS or _member_permit(hub, caller, permit_id) is None:
        return redirect("/recherche", STEP_REFUSED)
    try:
        hub.permits.step(caller.ctx, permit_id, APPLICANT_STEPS[step])
    except HubError:
        return redirect(target, STEP_REFUSED)
    return redirect(target, SUBMITTED if step == "soumettre" else ACTIVATED)


QUERY_ERRORS = {
    400: N_(
        "La requête n'est pas acceptée : une seule instruction SELECT sur les tables de "
        "l'extraction."
    ),
    403: N_("L'espace de travail n'est ouvert que pendant la durée de l'autorisation."),
    408: N_("La requête a dépassé le temps permis."),
    409: N_("Le projet n'a pas encore d'extraction."),
}


@router.post("/recherche/projets/{permit_id}/requete")
async def run_query(
    request: Request, caller: HubMemberPage, hub: HubDep, permit_id: str
) -> Response:
    """One read-only SELECT on the project's extract; its rows shown in the page (at most
    1,000), in answer to this POST only."""
    sql = text_of(await request.form(), "sql")

    def answer() -> Response:
        permit = _member_permit(hub, caller, permit_id)
        if permit is None:
            return not_found_page(request)
        try:
            result = hub.workspace.query(caller.ctx, permit_id, sql)
        except HubError as exc:
            error = QUERY_ERRORS.get(exc.status, QUERY_ERRORS[400])
            return _project_page(
                request, caller, hub, permit, sql=sql, query_error=error, status=exc.status
            )
        return _project_page(request, caller, hub, permit, query=result, sql=sql)

    return await run_in_threadpool(answer)


@router.post("/recherche/projets/{permit_id}/diffusions")
async def request_release(
    request: Request, caller: HubMemberPage, hub: HubDep, permit_id: str
) -> Response:
    """Ask for a table of aggregates to leave the project: the automatic control runs at once
    (the permit's profile, or a stricter one), then two checkers decide."""
    form = await request.form()
    values = {name: text_of(form, name) for name in RELEASE_FIELDS}
    submission = _submission_of(form)

    def answer() -> Response:
        permit = _member_permit(hub, caller, permit_id)
        if permit is None:
            return not_found_page(request)
        errors: dict[str, str] = {}
        if not values["rows"]:
            errors["rows"] = N_("Indiquez la colonne qui forme les lignes du tableau.")
        if values["profile"] not in choosable_profiles(permit.application.disclosure_profile):
            errors["profile"] = N_("Le profil de l'autorisation, ou un profil plus strict.")
        body: dict[str, Any] = {
            "sql": values["release_sql"],
            "rows": values["rows"],
            "columns": values["columns"] or None,
            "statistic": values["statistic"] or "count",
            "value": values["value"] or None,
        }
        release = None
        if not errors:
            try:
                release = hub.releases.request(
                    caller.ctx,
                    permit_id,
                    table_request(body),
                    values["profile"],
                    submission or None,
                )
            except HubError as exc:
                errors["release_sql"] = _release_error(exc)
        if release is None:
            return _project_page(
                request,
                caller,
                hub,
                permit,
                sql=values["release_sql"],
                release_values=values,
                release_errors=errors,
                release_submission=submission,
                status=400,
            )
        flash = RELEASE_ASKED if not release.gate_reasons else RELEASE_GATED
        return redirect(f"/recherche/projets/{permit_id}#diffusions", flash)

    return await run_in_threadpool(answer)


def _release_error(exc: HubError) -> str:
    if exc.status == 400 and "table request" in str(exc):
        return N_("Ce tableau n'est pas calculable : vérifiez les noms de colonnes.")
    if exc.status == 409 and "risk report" in str(exc):
        return N_("Le rapport de risque de l'extraction bloque toute diffusion.")
    return QUERY_ERRORS.get(exc.status, QUERY_ERRORS[400])


@router.post("/recherche/projets/{permit_id}/resultats")
async def publish_results(
    request: Request, caller: HubMemberPage, hub: HubDep, permit_id: str
) -> Response:
    """Where the project's results are public (EHDS art. 61): shown in the register."""
    url = text_of(await request.form(), "results_url")

    def answer() -> Response:
        permit = _member_permit(hub, caller, permit_id)
        if permit is None:
            return not_found_page(request)
        try:
            hub.permits.publish_results(caller.ctx, permit_id, url)
        except HubError as exc:
            refused = RESULTS_REFUSED if exc.status == 400 else STEP_REFUSED
            return redirect(f"/recherche/projets/{permit_id}", refused)
        return redirect(f"/recherche/projets/{permit_id}", RESULTS_SAVED)

    return await run_in_threadpool(answer)
