"""The research hub over HTTP: applications and decisions, the project's workspace, release
requests and their checkers, and the public register. Thin: the caller is
``request.state.principal`` (set by the authentication guard); the services decide who may do
what (roles, project membership, the permit's state) and audit it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import HTMLResponse, Response

from carnet.caller import Principal, RequestContext
from carnet.dependencies import HubDep
from carnet.fhir.errors import FhirError
from carnet.hub.application import Application
from carnet.hub.errors import HubError
from carnet.hub.permits import permit_json
from carnet.hub.register import register_entry, register_html
from carnet.hub.releases import table_request

router = APIRouter(prefix="/hub", tags=["hub"])
Json = Annotated[dict[str, Any], Body()]
_CODES = {400: "invalid", 403: "forbidden", 404: "not-found", 408: "timeout", 409: "conflict"}


@contextmanager
def _answering() -> Iterator[None]:
    """A refused hub action answers as an OperationOutcome with its status."""
    try:
        yield
    except HubError as exc:
        raise FhirError.of(exc.status, _CODES.get(exc.status, "processing"), str(exc)) from None


def _ctx(request: Request) -> RequestContext:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise FhirError.of(401, "login", "authentication required")
    source = request.client.host if request.client else "unknown"
    return RequestContext(principal, principal.subject, source, purpose="research")


def _now() -> datetime:
    return datetime.now(UTC)


@router.post("/roles")
def grant_role(request: Request, hub: HubDep, body: Json) -> dict[str, str]:
    """The operator grants a hub role (researcher, reviewer, output_checker) to an account."""
    _ctx(request)
    with _answering():
        try:
            hub.roles.grant(str(body["subject"]), str(body["role"]))
        except (KeyError, ValueError) as exc:
            raise HubError(400, f"subject and a known role are required: {exc}") from None
    return {"subject": str(body["subject"]), "role": str(body["role"])}


@router.post("/permits", status_code=201)
def apply(request: Request, hub: HubDep, body: Json) -> dict[str, Any]:
    """A researcher's application, as a draft of their project."""
    ctx = _ctx(request)
    with _answering():
        permit = hub.permits.apply(ctx, Application.from_json(body))
    return permit_json(permit, _now())


@router.get("/permits")
def list_permits(request: Request, hub: HubDep) -> list[dict[str, Any]]:
    """The caller's projects; for a reviewer, every application past draft."""
    ctx = _ctx(request)
    return [permit_json(p, _now()) for p in hub.permits.visible_to(ctx)]


@router.get("/permits/{permit_id}")
def get_permit(request: Request, hub: HubDep, permit_id: str) -> dict[str, Any]:
    ctx = _ctx(request)
    with _answering():
        permit = hub.permits.view(ctx, permit_id)  # the service decides, as for the portal
    return permit_json(permit, _now())


@router.post("/permits/{permit_id}/steps/{step}")
def take_step(
    request: Request, hub: HubDep, permit_id: str, step: str, body: Json | None = None
) -> dict[str, Any]:
    """submit, review, approve (``conditions``, ``validMonths``), reject, activate, revoke."""
    ctx = _ctx(request)
    body = body or {}
    with _answering():
        months = body.get("validMonths")
        permit = hub.permits.step(
            ctx,
            permit_id,
            step,
            conditions=str(body["conditions"])[:4000] if body.get("conditions") else None,
            valid_months=int(months) if isinstance(months, int) else None,
        )
    return permit_json(permit, _now())


@router.post("/permits/{permit_id}/results")
def publish_results(request: Request, hub: HubDep, permit_id: str, body: Json) -> dict[str, Any]:
    """Where the project's results are public (art. 61)."""
    ctx = _ctx(request)
    with _answering():
        permit = hub.permits.publish_results(ctx, permit_id, str(body.get("url", "")))
    return permit_json(permit, _now())


@router.post("/permits/{permit_id}/query")
def query(request: Request, hub: HubDep, permit_id: str, body: Json) -> dict[str, Any]:
    """One read-only SELECT over the project's extract, for its team while the permit is active."""
    ctx = _ctx(request)
    with _answering():
        result = hub.workspace.query(ctx, permit_id, str(body.get("sql", "")))
    return {
        "columns": list(result.columns),
        "rows": [list(r) for r in result.rows],
        "truncated": result.truncated,
    }


@router.post("/permits/{permit_id}/releases", status_code=201)
def request_release(request: Request, hub: HubDep, permit_id: str, body: Json) -> dict[str, Any]:
    """A table of aggregates to release: controlled at once, then queued for two checkers."""
    ctx = _ctx(request)
    with _answering():
        profile = body.get("profile")
        release = hub.releases.request(
            ctx, permit_id, table_request(body), str(profile) if profile else None
        )
    return release.as_json()


@router.get("/releases/{release_id}")
def get_release(request: Request, hub: HubDep, release_id: str) -> dict[str, Any]:
    ctx = _ctx(request)
    with _answering():
        release = hub.releases.view(ctx, release_id)
    out = release.as_json()
    out["table"] = release.released_table  # controlled cells only: no true count is stored
    return out


@router.post("/releases/{release_id}/reviews")
def review_release(request: Request, hub: HubDep, release_id: str, body: Json) -> dict[str, Any]:
    """An output checker's decision: ``approve`` or ``refuse``, with a comment."""
    ctx = _ctx(request)
    with _answering():
        comment = body.get("comment")
        release = hub.releases.review(
            ctx, release_id, str(body.get("decision", "")), str(comment) if comment else None
        )
    return release.as_json()


@router.get("/releases/{release_id}/results.json")
def release_record(request: Request, hub: HubDep, release_id: str) -> dict[str, Any]:
    """The request's record in ACRO's results.json format (for SACRO-Viewer)."""
    ctx = _ctx(request)
    with _answering():
        return hub.releases.results_json(ctx, release_id)


@router.get("/releases/{release_id}/output")
def release_output(request: Request, hub: HubDep, release_id: str) -> list[dict[str, Any]]:
    """The released table, once two independent checkers approved it."""
    ctx = _ctx(request)
    with _answering():
        return hub.releases.output(ctx, release_id)


@router.get("/register")
def register(hub: HubDep) -> list[dict[str, Any]]:
    """The public register of permits (no sign-in)."""
    now = _now()
    return [register_entry(p, now) for p in hub.permits.all_permits()]


@router.get("/register.html", response_class=HTMLResponse)
def register_page(hub: HubDep) -> HTMLResponse:
    now = _now()
    entries = [register_entry(p, now) for p in hub.permits.all_permits()]
    return HTMLResponse(register_html(entries))


@router.get("/catalogue")
def catalogue(hub: HubDep) -> list[dict[str, str]]:
    """The catalogue's datasets and the stable URLs of their HealthDCAT-AP descriptions."""
    return hub.catalogue.datasets()


@router.get("/catalogue/{dataset_id}.jsonld")
def catalogue_jsonld(hub: HubDep, dataset_id: str) -> Response:
    return _description(hub.catalogue.document(dataset_id, "jsonld"), "application/ld+json")


@router.get("/catalogue/{dataset_id}.ttl")
def catalogue_turtle(hub: HubDep, dataset_id: str) -> Response:
    return _description(hub.catalogue.document(dataset_id, "ttl"), "text/turtle; charset=utf-8")


def _description(text: str | None, media_type: str) -> Response:
    if text is None:
        raise FhirError.of(404, "not-found", "no such dataset in the catalogue")
    return Response(text, media_type=media_type)
