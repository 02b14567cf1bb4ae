"""The patient's controls and emergency access over HTTP: thin, the service decides.

The caller is ``request.state.principal`` (set by the authentication guard). A person acts on their
own record or, with ``?patient=``, on the record of someone they represent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from carnet.caller import RequestContext
from carnet.dependencies import ControlsDep, EmergencyDep, StepUpDep
from carnet.fhir.api import Ctx
from carnet.policy.break_glass import EmergencyAccess
from carnet.policy.control_events import ControlError
from carnet.policy.controls import ControlsService

router = APIRouter(prefix="/access")


Service = ControlsDep  # from the one dependencies module
Json = Annotated[dict[str, Any], Body()]
MaybeJson = Annotated[dict[str, Any] | None, Body()]


def _error(
    err: ControlError, service: ControlsService | EmergencyAccess, ctx: RequestContext, action: str
) -> JSONResponse:
    """The refusal as JSON, and as an audit event (every access, allowed or denied, is audited)."""
    service.refused(ctx, action, err.status)
    return JSONResponse({"error": str(err)}, status_code=err.status)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError(400, f"'{name}' is required")
    return value


@router.get("/controls")
def read_controls(service: Service, ctx: Ctx, patient: str | None = None) -> Any:
    try:
        return service.controls(ctx, patient).as_dict()
    except ControlError as err:
        return _error(err, service, ctx, "controls-read")


@router.post("/masks")
def mask(service: Service, ctx: Ctx, body: Json) -> Any:
    try:
        service.set_mask(ctx, _text(body, "resource"), _text(body, "flag"), on=True)
    except ControlError as err:
        return _error(err, service, ctx, "mask")
    return {"masked": body["resource"], "flag": body["flag"]}


@router.post("/masks/remove")
def unmask(service: Service, ctx: Ctx, body: Json) -> Any:
    try:
        service.set_mask(ctx, _text(body, "resource"), _text(body, "flag"), on=False)
    except ControlError as err:
        return _error(err, service, ctx, "unmask")
    return {"unmasked": body["resource"], "flag": body["flag"]}


@router.post("/blocks")
def block(service: Service, ctx: Ctx, body: Json, patient: str | None = None) -> Any:
    try:
        service.set_block(ctx, patient, _text(body, "rpps"), on=True)
    except ControlError as err:
        return _error(err, service, ctx, "block")
    return {"blocked": body["rpps"]}


@router.delete("/blocks/{rpps}")
def unblock(
    service: Service,
    ctx: Ctx,
    step_up: StepUpDep,
    rpps: str,
    patient: str | None = None,
    body: MaybeJson = None,
) -> Any:
    if refused := step_up.refusal(ctx, body, "unblock"):  # password + code again
        return refused
    try:
        service.set_block(ctx, patient, rpps, on=False)
    except ControlError as err:
        return _error(err, service, ctx, "unblock")
    return {"unblocked": rpps}


@router.post("/care")
def declare_care(service: Service, ctx: Ctx, body: Json, patient: str | None = None) -> Any:
    try:
        mt = body.get("medecinTraitant", False)
        if not isinstance(mt, bool):
            raise ControlError(400, "'medecinTraitant' is true or false")
        service.declare_care(ctx, patient, _text(body, "rpps"), medecin_traitant=mt)
    except ControlError as err:
        return _error(err, service, ctx, "care-declare")
    return {"care": body["rpps"], "medecinTraitant": mt}


@router.delete("/care/{rpps}")
def end_care(service: Service, ctx: Ctx, rpps: str, patient: str | None = None) -> Any:
    try:
        service.end_care(ctx, patient, rpps)
    except ControlError as err:
        return _error(err, service, ctx, "care-end")
    return {"ended": rpps}


@router.put("/preferences")
def preferences(
    service: Service, ctx: Ctx, step_up: StepUpDep, body: Json, patient: str | None = None
) -> Any:
    lifting_opposition = body.get("emergencyOpposition") is False
    if lifting_opposition and (refused := step_up.refusal(ctx, body, "preferences")):
        return refused  # lifting the opposition to emergency access: password + code again
    try:
        values: dict[str, bool | None] = {}
        for key, name in (
            ("emergencyOpposition", "emergency_opposition"),
            ("researchOptOut", "research_optout"),
        ):
            value = body.get(key)
            if value is not None and not isinstance(value, bool):
                raise ControlError(400, f"'{key}' is true or false")
            values[name] = value
        service.set_preferences(ctx, patient, **values)
        return service.controls(ctx, patient).as_dict()
    except ControlError as err:
        return _error(err, service, ctx, "preferences")


@router.post("/break-glass")
def break_glass(emergency: EmergencyDep, ctx: Ctx, body: Json) -> Any:
    try:
        return emergency.break_glass(ctx, _text(body, "patient"), _text(body, "reason"))
    except ControlError as err:
        return _error(err, emergency, ctx, "break-glass")


@router.get("/alerts")
def alerts(emergency: EmergencyDep, ctx: Ctx) -> Any:
    try:
        return {"alerts": emergency.alerts(ctx)}
    except ControlError as err:
        return _error(err, emergency, ctx, "alerts-read")
