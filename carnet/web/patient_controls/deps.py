"""The services behind the patient's control pages, built per request from the application's
(they hold references only), and the record a page acts for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from carnet.dependencies import ControlsDep, services_of
from carnet.policy.control_events import ControlError
from carnet.policy.controls import ControlsService
from carnet.record.alerts import AlertService
from carnet.record.export import RecordExport
from carnet.record.history import AccessHistory
from carnet.web.caller import PageCaller, PersonPage

PATIENT_PARAM = "pour"  # ?pour=<patient id>: the record of someone the person represents


async def access_history(request: Request) -> AccessHistory:
    s = services_of(request)
    return AccessHistory(
        s.audit, s.controls, s.accounts, s.fhir, base_url=str(s.settings.fhir_base_url)
    )


async def alert_service(request: Request) -> AlertService:
    s = services_of(request)
    return AlertService(s.engine, s.audit, s.controls)


async def record_export(request: Request) -> RecordExport:
    s = services_of(request)
    return RecordExport(s.fhir, base_url=str(s.settings.fhir_base_url))


HistoryDep = Annotated[AccessHistory, Depends(access_history)]
AlertsDep = Annotated[AlertService, Depends(alert_service)]
ExportDep = Annotated[RecordExport, Depends(record_export)]


class NotTheirsError(Exception):
    """The record asked for is not the caller's nor one they represent: a missing page."""


def acting_for(controls: ControlsService, caller: PageCaller, pour: str | None) -> tuple[str, bool]:
    """The record the page acts on (the caller's own, or one they represent) and whether as a
    representative; raises NotTheirsError (the refusal audited) otherwise."""
    try:
        return controls.acting_for(caller.ctx, pour or None)
    except ControlError:
        raise NotTheirsError from None


def with_patient(path: str, patient_id: str, as_representative: bool) -> str:
    """``path`` for the record acted on (``?pour=`` when it is a represented person's)."""
    if not as_representative:
        return path
    joiner = "&" if "?" in path else "?"
    return f"{path}{joiner}{PATIENT_PARAM}={patient_id}"


@dataclass(frozen=True)
class ActedOn:
    """The record a page acts on: the caller's own, or that of someone they represent."""

    patient_id: str
    as_representative: bool

    @property
    def pour(self) -> str:
        """The value of the ``pour`` field that keeps a form on this record."""
        return self.patient_id if self.as_representative else ""

    def path(self, path: str) -> str:
        """``path`` on this record (see :func:`with_patient`)."""
        return with_patient(path, self.patient_id, self.as_representative)


async def record_acted_on(request: Request, caller: PersonPage, controls: ControlsDep) -> ActedOn:
    """The record named by ``pour`` (query, or the form of a POST), checked by the controls
    service; a record that is not theirs raises NotTheirsError, answered as a missing page."""
    pour = request.query_params.get(PATIENT_PARAM)
    if pour is None and request.method == "POST":
        value = (await request.form()).get(PATIENT_PARAM)  # parsed once, kept by the request
        pour = value if isinstance(value, str) else None
    patient_id, as_representative = await run_in_threadpool(acting_for, controls, caller, pour)
    return ActedOn(patient_id, as_representative)


ActedOnDep = Annotated[ActedOn, Depends(record_acted_on)]
