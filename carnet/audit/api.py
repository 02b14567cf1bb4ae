"""The patient's access history over FHIR: AuditEvent search and read, NDJSON export.

Included before the generic FHIR router so these routes win over ``/fhir/{type}``. The audit log is
written by the server only: client writes to AuditEvent are refused with 405.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from carnet.audit import render
from carnet.audit.service import AuditService
from carnet.fhir.api import Ctx, FhirResponse, base_url
from carnet.fhir.errors import FhirError, bad_request, not_found
from carnet.fhir.render import page_links
from carnet.fhir.validation import check_id

router = APIRouter(prefix="/fhir")


def get_audit(request: Request) -> AuditService:
    audit: AuditService = request.app.state.services.audit
    return audit


Audit = Annotated[AuditService, Depends(get_audit)]


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got '{raw[:20]}'", name) from None


@router.get("/AuditEvent")
def search(request: Request, audit: Audit, ctx: Ctx) -> FhirResponse:
    """The patient's access history, newest first, each entry with its inclusion proof."""
    patient = request.query_params.get("patient", "").removeprefix("Patient/")
    if not patient:
        raise bad_request("AuditEvent is searched by patient: ?patient=<id>", "patient")
    check_id(patient)
    settings = request.app.state.settings
    count = min(max(0, _int(request, "_count", settings.default_page_size)), settings.max_page_size)
    offset = max(0, _int(request, "_offset", 0))
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
                    "resource": render.audit_event(e, page.checkpoint, audit.origin),
                    "search": {"mode": "match"},
                }
                for e in page.events
            ],
        }
    )


@router.get("/AuditEvent/{event_id}")
def read(event_id: str, audit: Audit, ctx: Ctx) -> FhirResponse:
    check_id(event_id)
    try:
        logged, checkpoint = audit.event(event_id, ctx)
    except KeyError:
        raise not_found(f"AuditEvent/{event_id} is not known") from None
    return FhirResponse(render.audit_event(logged, checkpoint, audit.origin))


@router.get("/Patient/{patient_id}/$audit-export")
def export(patient_id: str, audit: Audit, ctx: Ctx) -> StreamingResponse:
    """NDJSON: a checkpoint line (signed note, public key), then every event with its proof."""
    check_id(patient_id)
    checkpoint, events = audit.export_patient(patient_id, ctx)

    def lines() -> Iterator[bytes]:
        yield render.export_header(checkpoint, audit.public_key, patient_id) + b"\n"
        for logged in events:
            yield render.export_line(logged) + b"\n"

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
