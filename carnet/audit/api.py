"""The patient's access history over FHIR: AuditEvent search and read, NDJSON export.

Included before the generic FHIR router so these routes win over ``/fhir/{type}``. The audit log is
written by the server only: client writes to AuditEvent are refused with 405.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from carnet.audit import render
from carnet.audit.hidden import HistoryGate, readable_event, shown, visible_history
from carnet.audit.service import HISTORY_RULE, AuditService
from carnet.caller import RequestContext
from carnet.dependencies import AuditDep, ControlsDep, SettingsDep
from carnet.fhir.api import Ctx, FhirResponse, base_url
from carnet.fhir.errors import FhirError, bad_request, not_found
from carnet.fhir.render import page_links
from carnet.fhir.search import clamp_int
from carnet.fhir.validation import check_id

router = APIRouter(prefix="/fhir")


Audit = AuditDep  # from the one dependencies module


def _may_see(controls: HistoryGate, ctx: RequestContext, patient_id: str) -> bool:
    return controls.may_see_history(ctx.principal, patient_id)


def _hidden(controls: HistoryGate, ctx: RequestContext, patient_id: str) -> frozenset[str]:
    """The record's items the policy hides from this viewer, so from its history too."""
    return controls.history_hidden(ctx.principal, patient_id)


def _guard(
    controls: HistoryGate, audit: AuditService, ctx: RequestContext, patient_id: str
) -> None:
    """The patient, their representatives and operators read a record's history; the refusal
    is itself audited."""
    if not _may_see(controls, ctx, patient_id):
        denied = replace(ctx, rule=HISTORY_RULE)
        audit.record_failure(denied, "history-read", "Patient", patient_id, 403)
        raise FhirError.of(
            403, "forbidden", "only the patient and their representatives see this history"
        )


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return clamp_int(int(raw))
    except ValueError:
        raise bad_request(f"{name} must be an integer, got '{raw[:20]}'", name) from None


@router.get("/AuditEvent")
def search(
    request: Request, audit: Audit, ctx: Ctx, controls: ControlsDep, settings: SettingsDep
) -> FhirResponse:
    """The patient's access history, newest first, each entry with its inclusion proof."""
    patient = request.query_params.get("patient", "").removeprefix("Patient/")
    if not patient:
        raise bad_request("AuditEvent is searched by patient: ?patient=<id>", "patient")
    check_id(patient)
    _guard(controls, audit, ctx, patient)
    count = min(max(0, _int(request, "_count", settings.default_page_size)), settings.max_page_size)
    offset = max(0, _int(request, "_offset", 0))
    hidden = _hidden(controls, ctx, patient)
    if hidden:  # rare: then the events naming only hidden items are left out of pages and total
        page = visible_history(audit, patient, ctx, hidden, count=count, offset=offset)
    else:
        page = audit.patient_history(patient, ctx, count=count, offset=offset)
    base = base_url(request)
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": page.total,
            "link": page_links(
                base, "AuditEvent", [("patient", patient)], offset, count, page.total
            ),
            "entry": [
                {
                    "fullUrl": f"{base}/AuditEvent/{e.event_id}",
                    "resource": render.audit_event(e, page.checkpoint, audit.origin, hidden),
                    "search": {"mode": "match"},
                }
                for e in page.events
            ],
        }
    )


@router.get("/AuditEvent/{event_id}")
def read(event_id: str, audit: Audit, ctx: Ctx, controls: ControlsDep) -> FhirResponse:
    """One event, with only the patient slices the caller may see (all of them for operators)."""
    check_id(event_id)
    try:
        # the log records the reading with what it gave this caller (a refusal when nothing)
        logged, checkpoint, hidden = readable_event(audit, event_id, ctx, controls)
    except KeyError:
        raise not_found(f"AuditEvent/{event_id} is not known") from None
    return FhirResponse(render.audit_event(logged, checkpoint, audit.origin, hidden))


@router.get("/Patient/{patient_id}/$audit-export")
def export(patient_id: str, audit: Audit, ctx: Ctx, controls: ControlsDep) -> StreamingResponse:
    """NDJSON: a checkpoint line (signed note, public key), then every event with its proof."""
    check_id(patient_id)
    _guard(controls, audit, ctx, patient_id)
    hidden = _hidden(controls, ctx, patient_id)
    checkpoint, events = audit.export_patient(patient_id, ctx)

    def lines() -> Iterator[bytes]:
        yield render.export_header(checkpoint, audit.public_key, patient_id) + b"\n"
        for logged in events:
            if all(shown(piece, hidden) for piece in logged.slices):
                yield render.export_line(logged, hidden) + b"\n"

    return StreamingResponse(lines(), media_type="application/fhir+ndjson")


def _refuse() -> None:
    raise FhirError.of(
        405, "not-supported", "the audit log is written by the server only; AuditEvent is read-only"
    )


for _path in ("/AuditEvent", "/AuditEvent/{event_id}"):
    router.add_api_route(
        _path,
        _refuse,
        methods=["POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,
        name=f"refuse-write{_path}",
    )
