"""The identity-vigilance API under /identity: match (explain), resolve, the queue and its actions.

Routes parse, call :class:`~carnet.identity.service.IdentityService` and render; errors are FHIR
OperationOutcomes (400 for invalid traits or NIR, 409 for a conflicting INS or a closed item, 404
for an unknown item or merge).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from carnet.dependencies import IdentityDep
from carnet.fhir.api import Ctx, FhirResponse
from carnet.fhir.errors import FhirError, bad_request, conflict, not_found
from carnet.identity.ins import InvalidTraits
from carnet.identity.service import (
    IdentityConflict,
    IdentityInput,
    VigilanceError,
    patient_identity,
)

router = APIRouter(prefix="/identity")


Identity = IdentityDep  # from the one dependencies module


def identity_input(patient: Any) -> IdentityInput:
    """The identity a FHIR Patient body carries, or a 400 naming the broken rule."""
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise bad_request("the body must be a FHIR Patient")
    try:
        return patient_identity(patient)
    except InvalidTraits as exc:
        raise bad_request(str(exc)) from None


def _vigilance_error(exc: VigilanceError) -> FhirError:
    message = str(exc)
    return not_found(message) if exc.status == 404 else conflict(message)


async def _body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise bad_request("the body is not JSON") from None


@router.post("/match")
async def match(request: Request, service: Identity) -> FhirResponse:
    """Explain what the index would decide for a Patient, without writing anything."""
    inp = identity_input(await _body(request))
    try:
        return FhirResponse((await run_in_threadpool(service.match, inp)).as_dict())
    except IdentityConflict as exc:
        raise conflict(str(exc)) from None


@router.post("/resolve")
async def resolve(request: Request, service: Identity, ctx: Ctx) -> FhirResponse:
    """Match a Patient's identity and act: link, vigilance queue or new identity."""
    inp = identity_input(await _body(request))
    try:
        return FhirResponse((await run_in_threadpool(service.resolve, inp, ctx=ctx)).as_dict())
    except IdentityConflict as exc:
        raise conflict(str(exc)) from None


@router.get("/queue")
def queue(service: Identity, state: str = "open") -> FhirResponse:
    """Vigilance items in a state (open, merged, dismissed, unmerged) with their evidence."""
    if state not in ("open", "merged", "dismissed", "unmerged"):
        raise bad_request(f"state must be open, merged, dismissed or unmerged, got '{state[:20]}'")
    return FhirResponse({"items": service.vigilance.queue(state)})


@router.post("/queue/{item_id}/merge")
def merge(item_id: str, service: Identity, ctx: Ctx) -> FhirResponse:
    """Same person: merge the item's pending identity into its candidate."""
    try:
        return FhirResponse(service.vigilance.merge_item(item_id, actor=ctx.actor, ctx=ctx))
    except VigilanceError as exc:
        raise _vigilance_error(exc) from None


@router.post("/queue/{item_id}/dismiss")
def dismiss(item_id: str, service: Identity, ctx: Ctx) -> FhirResponse:
    """Not the same person: the pending identity becomes a distinct one."""
    try:
        return FhirResponse(
            {"released": service.vigilance.dismiss(item_id, actor=ctx.actor, ctx=ctx)}
        )
    except VigilanceError as exc:
        raise _vigilance_error(exc) from None


@router.post("/merges/{merge_id}/unmerge")
def unmerge(merge_id: str, service: Identity, ctx: Ctx) -> FhirResponse:
    """Undo a merge."""
    try:
        service.vigilance.unmerge(merge_id, actor=ctx.actor, ctx=ctx)
    except VigilanceError as exc:
        raise _vigilance_error(exc) from None
    return FhirResponse({"unmerged": merge_id})
