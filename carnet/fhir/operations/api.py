"""Router of the FHIR operations under /fhir: parse, call the operation, render.

Mounted before the generic FHIR router so that ``/Patient/$export`` is not read as a resource id.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from email.utils import format_datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from carnet.dependencies import ExportDep, ImportDep
from carnet.fhir.api import Ctx, FhirResponse, Service, base_url, public_request_url, read_json
from carnet.fhir.errors import bad_request
from carnet.fhir.operations.everything import everything
from carnet.fhir.operations.export import ExportService, StatusReply, parameters_to_params
from carnet.fhir.operations.summary import summary

router = APIRouter(prefix="/fhir")
NDJSON = "application/fhir+ndjson"


Export = ExportDep  # from the one dependencies module
Import = ImportDep
Prefer = Annotated[str | None, Header()]


@router.get("/Patient/{patient_id}/$everything")
def patient_everything(
    patient_id: str, request: Request, service: Service, ctx: Ctx
) -> FhirResponse:
    params = list(request.query_params.multi_items())
    return FhirResponse(everything(service, ctx, base_url(request), patient_id, params))


@router.get("/Patient/{patient_id}/$summary")
def patient_summary(patient_id: str, request: Request, service: Service, ctx: Ctx) -> FhirResponse:
    return FhirResponse(summary(service, ctx, base_url(request), patient_id))


@router.post("/Patient/{patient_id}/$summary")
def patient_summary_post(
    patient_id: str, request: Request, service: Service, ctx: Ctx
) -> FhirResponse:
    return patient_summary(patient_id, request, service, ctx)


# -- bulk export --------------------------------------------------------------------------------


def _kickoff_accepted(request: Request, status_path: str) -> Response:
    return Response(
        status_code=202, headers={"Content-Location": f"{base_url(request)}/{status_path}"}
    )


def _require_async(prefer: str | None) -> None:
    if not prefer or "respond-async" not in prefer:
        raise bad_request("bulk operations need the header 'Prefer: respond-async'", "Prefer")


def _export(
    request: Request,
    ctx: Ctx,
    export: ExportService,
    prefer: str | None,
    level: str,
    group_id: str | None = None,
) -> Response:
    _require_async(prefer)
    params = list(request.query_params.multi_items())
    job_id = export.kickoff(
        ctx, base_url(request), public_request_url(request), level, params, group_id
    )
    return _kickoff_accepted(request, f"$export-status/{job_id}")


@router.get("/$export")
def system_export(request: Request, ctx: Ctx, export: Export, prefer: Prefer = None) -> Response:
    return _export(request, ctx, export, prefer, "system")


@router.get("/Patient/$export")
def patient_export(request: Request, ctx: Ctx, export: Export, prefer: Prefer = None) -> Response:
    return _export(request, ctx, export, prefer, "patient")


@router.get("/Group/{group_id}/$export")
def group_export(
    group_id: str, request: Request, ctx: Ctx, export: Export, prefer: Prefer = None
) -> Response:
    return _export(request, ctx, export, prefer, "group", group_id)


async def _export_post(
    request: Request,
    ctx: Ctx,
    export: ExportService,
    prefer: str | None,
    level: str,
    group_id: str | None = None,
) -> Response:
    """Bulk Data v2's POST kick-off: the parameters come in a Parameters resource."""
    _require_async(prefer)
    params = list(request.query_params.multi_items())
    params += parameters_to_params(await read_json(request))
    job_id = await run_in_threadpool(
        export.kickoff, ctx, base_url(request), public_request_url(request), level, params, group_id
    )
    return _kickoff_accepted(request, f"$export-status/{job_id}")


@router.post("/$export")
async def system_export_post(
    request: Request, ctx: Ctx, export: Export, prefer: Prefer = None
) -> Response:
    return await _export_post(request, ctx, export, prefer, "system")


@router.post("/Patient/$export")
async def patient_export_post(
    request: Request, ctx: Ctx, export: Export, prefer: Prefer = None
) -> Response:
    return await _export_post(request, ctx, export, prefer, "patient")


@router.post("/Group/{group_id}/$export")
async def group_export_post(
    group_id: str, request: Request, ctx: Ctx, export: Export, prefer: Prefer = None
) -> Response:
    return await _export_post(request, ctx, export, prefer, "group", group_id)


def _status_response(reply: StatusReply) -> Response:
    if reply.status == 202:
        return Response(
            status_code=202, headers={"X-Progress": reply.progress or "", "Retry-After": "1"}
        )
    if reply.error is not None:
        return FhirResponse(reply.error.outcome(), status_code=reply.error.status)
    headers = {}
    if reply.expires is not None:
        headers["Expires"] = format_datetime(reply.expires.astimezone(UTC), usegmt=True)
    return Response(
        orjson.dumps(reply.manifest),
        media_type="application/json",
        status_code=reply.status,
        headers=headers,
    )


@router.get("/$export-status/{job_id}")
def export_status(job_id: str, ctx: Ctx, export: Export) -> Response:
    return _status_response(export.status(job_id, ctx))


@router.delete("/$export-status/{job_id}")
def export_cancel(job_id: str, ctx: Ctx, export: Export) -> Response:
    export.cancel(job_id, ctx)
    return Response(status_code=202)


@router.get("/$export-file/{job_id}/{name}")
def export_file(job_id: str, name: str, ctx: Ctx, export: Export) -> StreamingResponse:
    records: Iterator[bytes] = export.open_file(ctx, job_id, name)
    return StreamingResponse(records, media_type=NDJSON)


# -- bulk import --------------------------------------------------------------------------------


@router.post("/$import")
async def bulk_import(
    request: Request, ctx: Ctx, importer: Import, prefer: Prefer = None
) -> Response:
    _require_async(prefer)
    body = await read_json(request)
    job_id = await run_in_threadpool(importer.kickoff, ctx, public_request_url(request), body)
    return _kickoff_accepted(request, f"$import-status/{job_id}")


@router.get("/$import-status/{job_id}")
def import_status(job_id: str, ctx: Ctx, importer: Import) -> Response:
    return _status_response(importer.status(job_id, ctx))


@router.delete("/$import-status/{job_id}")
def import_cancel(job_id: str, ctx: Ctx, importer: Import) -> Response:
    importer.cancel(job_id, ctx)
    return Response(status_code=202)
