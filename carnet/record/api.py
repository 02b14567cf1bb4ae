"""The personal space over HTTP: a person (or their legal representative) sees the space, objects
to it or closes it. Thin: the caller is ``request.state.principal`` (set by the authentication
guard of carnet/authn); the router parses, calls RecordService and renders."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from carnet.caller import Kind, Principal, RequestContext
from carnet.dependencies import RecordDep, StepUpDep
from carnet.fhir.errors import FhirError
from carnet.record.service import RecordService

router = APIRouter(prefix="/record", tags=["record"])
MaybeJson = Annotated[dict[str, Any] | None, Body()]


def _acting(
    request: Request, service: RecordService, patient: str | None
) -> tuple[RequestContext, str]:
    """The caller's context and the person they act for: themselves, or someone they represent."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise FhirError.of(401, "login", "authentication required")
    if principal.kind is not Kind.PERSON or not principal.patient_id:
        raise FhirError.of(
            403, "forbidden", "only a person or their representative manages a space"
        )
    host = request.client.host if request.client else "unknown"
    ctx = RequestContext(
        actor=principal.subject, source=host, purpose="accounts", principal=principal
    )
    if patient is None or patient == principal.patient_id:
        return ctx, principal.patient_id
    if patient not in service.representatives.represented_patients(principal.patient_id):
        # The same answer as for a space that does not exist: nothing learnt about others; the
        # attempt is audited in that patient's part of the log.
        denied = replace(ctx, rule="not-represented")
        service.fhir.record_failure(denied, "record", "Patient", patient, 404)
        raise FhirError.of(404, "not-found", f"no personal space for Patient/{patient[:64]}")
    return ctx, patient


def _render(service: RecordService, patient_id: str) -> dict[str, Any]:
    space = service.space(patient_id)
    if space is None:
        raise FhirError.of(404, "not-found", f"no personal space for Patient/{patient_id[:64]}")
    return space.as_dict()


@router.get("/space")
def get_space(request: Request, service: RecordDep, patient: str | None = None) -> dict[str, Any]:
    """The caller's space (or, with ``patient``, that of someone they represent)."""
    _ctx, patient_id = _acting(request, service, patient)
    return _render(service, patient_id)


@router.post("/objection")
def post_objection(
    request: Request,
    service: RecordDep,
    step_up: StepUpDep,
    patient: str | None = None,
    body: MaybeJson = None,
) -> Any:
    """Object: a pending space is refused, an open one closed; data kept, then shredded. Needs
    the password and a new second-factor code (``stepUp``)."""
    ctx, patient_id = _acting(request, service, patient)
    if refused := step_up.refusal(ctx, body, "object"):
        return refused
    service.object(patient_id, ctx=ctx)
    return _render(service, patient_id)


@router.post("/closure")
def post_closure(
    request: Request,
    service: RecordDep,
    step_up: StepUpDep,
    patient: str | None = None,
    body: MaybeJson = None,
) -> Any:
    """Close the space at the person's request; data kept until the retention ends. Needs the
    password and a new second-factor code (``stepUp``)."""
    ctx, patient_id = _acting(request, service, patient)
    if refused := step_up.refusal(ctx, body, "close"):
        return refused
    service.close(patient_id, reason="request", ctx=ctx)
    return _render(service, patient_id)
