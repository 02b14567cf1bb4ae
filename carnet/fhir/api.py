"""The FHIR REST router: parse, call FhirService, render. No database access here."""

from __future__ import annotations

import base64
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from carnet.caller import Principal, RequestContext
from carnet.dependencies import FhirDep, FhirSecurityDep, SettingsDep, services_of
from carnet.fhir import transactions
from carnet.fhir.attachments import BINARY_RESPONSE_HEADERS
from carnet.fhir.capability import capability_statement
from carnet.fhir.dates import instant, utc_now
from carnet.fhir.errors import FhirError, bad_request, operation_outcome
from carnet.fhir.repository import StoredResource
from carnet.fhir.service import WriteResult
from carnet.fhir.validation import check_nesting

FHIR_JSON = "application/fhir+json"

router = APIRouter(prefix="/fhir")


class FhirResponse(Response):
    media_type = f"{FHIR_JSON}; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return b"" if content is None else orjson.dumps(content)


Service = FhirDep  # the FHIR service, from the one dependencies module


async def request_context(request: Request) -> RequestContext:
    """Who is asking, as the authentication middleware found it (carnet.authn.guard); ids only."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # every FHIR endpoint is guarded: reaching here unauthenticated is a bug
        raise FhirError.of(401, "login", "authentication required")
    _refuse_nul(request)
    source = request.client.host if request.client else "unknown"
    return RequestContext(actor=principal.subject, source=source, principal=principal)


Ctx = Annotated[RequestContext, Depends(request_context)]


def base_url(request: Request) -> str:
    """The public FHIR base, from settings: a forged Host header never reaches a link."""
    return str(services_of(request).settings.fhir_base_url)


def public_request_url(request: Request) -> str:
    """The URL of this request as seen from outside (the public base, never the Host header)."""
    path = request.url.path.removeprefix("/fhir")
    query = request.url.query
    return base_url(request) + path + (f"?{query}" if query else "")


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise bad_request("request body is empty")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    check_nesting(body)  # before any recursive walk of it (``_has_nul``, validation)
    if b"\\u0000" in raw and _has_nul(body):
        raise bad_request("body contains a NUL character, which FHIR strings may not hold")
    return body


def _refuse_nul(request: Request) -> None:
    """A NUL in a conditional header's search matches nothing, and PostgreSQL refuses it in text
    (a 500 once): 400 instead. NULs in the URL are refused by ``RefuseNulInUrl``."""
    conditional = (request.headers.get(h, "") for h in ("if-none-exist", "if-match"))
    if any("%00" in value for value in conditional):
        raise bad_request("the request contains a NUL character")


class RefuseNulInUrl:
    """ASGI middleware: a NUL in a path or query string (an id, a search, an OAuth parameter)
    matches nothing, and PostgreSQL refuses it in text (a 500 once): 400 before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")
        ):
            outcome = FhirError.of(400, "invalid", "the request URL contains a NUL character")
            await error_response(outcome)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _http_date(fhir_instant: str) -> str:
    return format_datetime(datetime.fromisoformat(fhir_instant.replace("Z", "+00:00")), usegmt=True)


def resource_response(
    stored: StoredResource, status: int = 200, prefer: str | None = None
) -> FhirResponse:
    headers = {"ETag": stored.etag, "Last-Modified": _http_date(stored.last_updated)}
    if status == 201:
        headers["Location"] = f"{stored.res_type}/{stored.res_id}/_history/{stored.version}"
    body: Any = stored.body
    if prefer and "return=minimal" in prefer:
        body = None
    elif prefer and "return=OperationOutcome" in prefer:
        body = operation_outcome([])
    return FhirResponse(body, status_code=status, headers=headers)


def write_response(result: WriteResult, prefer: str | None) -> FhirResponse:
    if result.held is not None:  # held for identity vigilance: accepted, not stored as sent
        return FhirResponse(result.held, status_code=202)
    return resource_response(result.stored, 201 if result.created else 200, prefer)


def _strict(prefer: str | None) -> bool:
    return bool(prefer and "handling=strict" in prefer)


@router.get("/metadata")
def metadata(request: Request, service: Service, security: FhirSecurityDep) -> FhirResponse:
    statement = capability_statement(
        service.definitions,
        base_url(request),
        instant(utc_now()),
        route_paths=request.app.openapi()["paths"],  # every routed path (built once, cached)
        security=security,
    )
    return FhirResponse(statement)


@router.post("")
async def system_bundle(
    request: Request, service: Service, ctx: Ctx, settings: SettingsDep
) -> FhirResponse:
    bundle = await read_json(request)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise bad_request("the base URL accepts only a Bundle of type transaction or batch")
    service.validator.validate_bundle_shell(bundle)
    transactions.refuse_oversized_entries(bundle, settings.max_resource_bytes)
    if bundle.get("type") == "transaction":
        run = transactions.run_transaction
    elif bundle.get("type") == "batch":
        run = transactions.run_batch
    else:
        raise bad_request(
            f"Bundle.type '{bundle.get('type')}' cannot be processed here", "Bundle.type"
        )
    # Off the event loop: the database, encryption and SQLite's lock waits block.
    return FhirResponse(await run_in_threadpool(run, service, bundle, base_url(request), ctx))


@router.get("/_history")
def system_history(request: Request, service: Service, ctx: Ctx) -> FhirResponse:
    return FhirResponse(
        service.history(
            base_url(request), None, None, list(request.query_params.multi_items()), ctx=ctx
        )
    )


@router.get("/{res_type}")
def search(
    res_type: str,
    request: Request,
    service: Service,
    ctx: Ctx,
    prefer: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    params = list(request.query_params.multi_items())
    return FhirResponse(
        service.search(base_url(request), res_type, params, strict=_strict(prefer), ctx=ctx)
    )


@router.post("/{res_type}/_search")
async def search_post(
    res_type: str,
    request: Request,
    service: Service,
    ctx: Ctx,
    prefer: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    form = await request.form()
    params = [(k, str(v)) for k, v in form.multi_items()] + list(request.query_params.multi_items())
    found = await run_in_threadpool(
        service.search, base_url(request), res_type, params, strict=_strict(prefer), ctx=ctx
    )
    return FhirResponse(found)


@router.post("/{res_type}")
async def create(
    res_type: str,
    request: Request,
    service: Service,
    ctx: Ctx,
    prefer: Annotated[str | None, Header()] = None,
    if_none_exist: Annotated[str | None, Header()] = None,
    content_type: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    if res_type == "Binary" and content_type and "json" not in content_type:
        body: Any = {
            "resourceType": "Binary",
            "contentType": content_type,
            "data": base64.b64encode(await request.body()).decode(),
        }
    else:
        body = await read_json(request)
    created = await run_in_threadpool(
        service.create, res_type, body, if_none_exist=if_none_exist, ctx=ctx
    )
    return write_response(created, prefer)


@router.get("/{res_type}/_history")
def type_history(res_type: str, request: Request, service: Service, ctx: Ctx) -> FhirResponse:
    return FhirResponse(
        service.history(
            base_url(request), res_type, None, list(request.query_params.multi_items()), ctx=ctx
        )
    )


@router.get("/{res_type}/{res_id}")
def read(
    res_type: str,
    res_id: str,
    service: Service,
    ctx: Ctx,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    stored = service.read(res_type, res_id, ctx=ctx)
    if (
        res_type == "Binary"
        and stored.body
        and accept
        and "json" not in accept
        and "*/*" not in accept
    ):
        return Response(
            base64.b64decode(stored.body.get("data", "")),
            media_type=str(stored.body.get("contentType", "application/octet-stream")),
            headers={"ETag": stored.etag, **BINARY_RESPONSE_HEADERS},
        )
    return resource_response(stored)


@router.put("/{res_type}/{res_id}")
async def update(
    res_type: str,
    res_id: str,
    request: Request,
    service: Service,
    ctx: Ctx,
    prefer: Annotated[str | None, Header()] = None,
    if_match: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    body = await read_json(request)
    updated = await run_in_threadpool(
        service.update, res_type, res_id, body, if_match=if_match, ctx=ctx
    )
    return write_response(updated, prefer)


@router.delete("/{res_type}/{res_id}")
def delete(res_type: str, res_id: str, service: Service, ctx: Ctx) -> Response:
    try:
        stored = service.delete(res_type, res_id, ctx=ctx)
    except FhirError as err:
        if err.status != 404 or err.rule is None:
            raise
        # An item hidden from the caller (refused, and audited as such) is answered exactly as
        # a missing one, whose delete succeeds and changes nothing.
        stored = None
    headers = {"ETag": stored.etag} if stored else {}
    return Response(status_code=204, headers=headers)


@router.get("/{res_type}/{res_id}/_history")
def instance_history(
    res_type: str, res_id: str, request: Request, service: Service, ctx: Ctx
) -> FhirResponse:
    return FhirResponse(
        service.history(
            base_url(request), res_type, res_id, list(request.query_params.multi_items()), ctx=ctx
        )
    )


@router.get("/{res_type}/{res_id}/_history/{version}")
def vread(res_type: str, res_id: str, version: str, service: Service, ctx: Ctx) -> FhirResponse:
    return resource_response(service.vread(res_type, res_id, version, ctx=ctx))


# After the _history routes, so /Patient/<id>/_history is not read as a compartment search.
@router.get("/Patient/{patient_id}/{res_type}")
def compartment_search(
    patient_id: str,
    res_type: str,
    request: Request,
    service: Service,
    ctx: Ctx,
    prefer: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    params = list(request.query_params.multi_items())
    return FhirResponse(
        service.compartment_search(
            base_url(request), patient_id, res_type, params, strict=_strict(prefer), ctx=ctx
        )
    )


def error_response(error: FhirError) -> FhirResponse:
    return FhirResponse(error.outcome(), status_code=error.status)
