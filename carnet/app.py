"""create_app(settings): wires services and routers; nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import cache, partial
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from carnet.audit import api as audit_api
from carnet.audit import wiring as audit_wiring
from carnet.audit.service import AuditService
from carnet.authn import api as login_api
from carnet.authn import oauth_api, oidc_api
from carnet.authn import wiring as authn_wiring
from carnet.authn.clients import ClientService
from carnet.authn.grants import end_app_access_in
from carnet.authn.guard import Authenticator, bearer_challenge
from carnet.authn.login import LoginVerifier
from carnet.authn.oauth import OAuthService
from carnet.authn.oidc import DevIdentityProvider, ProfessionalLogin
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from carnet.authn.smart import capability_security
from carnet.authn.tickets import Tickets
from carnet.crypto import wiring as crypto_wiring
from carnet.crypto.service import CryptoService
from carnet.db import wiring as db_wiring
from carnet.db.engine import RETRY_AFTER_SECONDS, is_lock_timeout
from carnet.db.storage_faults import storage_fault, store_places
from carnet.dependencies import access_guard, install
from carnet.fhir import api as fhir_api
from carnet.fhir import wiring as fhir_wiring
from carnet.fhir.errors import FhirError, lock_timeout_error, storage_error
from carnet.fhir.operations import api as operations_api
from carnet.fhir.operations import wiring as operations_wiring
from carnet.fhir.operations.export import ExportService
from carnet.fhir.operations.import_ import ImportService
from carnet.fhir.service import FhirService
from carnet.hub import api as hub_api
from carnet.hub import wiring as hub_wiring
from carnet.identity import api as identity_api
from carnet.identity import wiring as identity_wiring
from carnet.identity.lookup import PatientFinder
from carnet.identity.service import IdentityService
from carnet.policy import api as access_api
from carnet.policy import wiring as policy_wiring
from carnet.policy.break_glass import EmergencyAccess
from carnet.policy.controls import ControlsService
from carnet.policy.research_optout import ResearchOptOut
from carnet.policy.service import PolicyDecisionPoint
from carnet.record import api as record_api
from carnet.record import wiring as record_wiring
from carnet.record.alert_sweeper import AlertSweeper
from carnet.record.alerts import AlertService
from carnet.record.representatives import represented_patients_in
from carnet.record.search import RecordSearch
from carnet.record.service import RecordService, accepts_writes
from carnet.screening import wiring as screening_wiring
from carnet.screening.service import Screener
from carnet.settings import Settings
from carnet.sovereignty.report import refuse_unless_sovereign
from carnet.web import wiring as web_wiring
from carnet.web_safety import (
    BodyLimits,
    BodyTooLarge,
    LimitRequestBodies,
    SafeResponseHeaders,
    too_large_response_parts,
)

log = logging.getLogger("carnet")

API_ROUTERS: tuple[APIRouter, ...] = (
    oauth_api.router,  # before the generic routes: /fhir/.well-known/...
    audit_api.router,  # before the generic /fhir/{type} routes
    operations_api.router,  # before the generic routes: /Patient/$export
    fhir_api.router,
    identity_api.router,
    login_api.router,
    access_api.router,
    record_api.router,
    oidc_api.router,
    hub_api.router,
)


@dataclass
class Services:
    """Everything a request, a CLI command or a test needs, built once from settings."""

    settings: Settings
    engine: Engine
    crypto: CryptoService
    fhir: FhirService
    audit: AuditService
    bulk_export: ExportService
    bulk_import: ImportService
    identity: IdentityService
    record: RecordService
    pdp: PolicyDecisionPoint
    accounts: AccountService
    login: LoginVerifier
    sessions: SessionService
    controls: ControlsService
    emergency: EmergencyAccess  # break-glass, its banner, the operator's alerts
    research_optout: ResearchOptOut  # the opt-out's history, read by the hub
    clients: ClientService
    oauth: OAuthService
    tickets: Tickets
    dev_idp: DevIdentityProvider | None
    pro_login: ProfessionalLogin
    authenticator: Authenticator
    finder: PatientFinder  # a professional finds a patient (INS or strict traits)
    record_search: RecordSearch  # in-record search; its in-memory analyses outlive a request
    fhir_security: dict[str, Any] | None = None  # rest.security of /fhir/metadata (SMART)
    hub: hub_wiring.HubServices | None = None  # the research hub (permits, workspace, releases)
    screener: Screener | None = None  # incoming files (the FHIR write path has it already)

    def close(self) -> None:
        self.bulk_export.runner.wait_all()  # bulk jobs hold connections until they finish
        self.bulk_import.runner.wait_all()
        self.pro_login.http.close()
        self.oauth.key_sets.close()
        self.audit.stop()
        self.audit.flush()  # publish what this process recorded (CLI commands, tests)
        self.engine.dispose()


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Open the database (applying migrations), the keyring and the FHIR engine; each domain
    builds its own services, here called in dependency order."""
    engine = db_wiring.build(settings, migrate=migrate)
    crypto = crypto_wiring.build(settings)
    store = fhir_wiring.build_store(settings, engine, crypto)
    audit = audit_wiring.build(settings, engine, crypto)
    pdp = policy_wiring.build_decision_point(
        engine,
        store,
        represented=represented_patients_in,
        record_open=accepts_writes,
        migrate=migrate,
    )
    fhir = fhir_wiring.build(settings, store, access=policy_wiring.access_hook(audit, pdp))
    screener = screening_wiring.build(settings, fhir)  # first check: before identity holds any
    identity = identity_wiring.build(settings, engine, fhir, crypto)
    # A closed space's apps lose their grants and refresh tokens in the closure's transaction.
    record = record_wiring.build(
        settings, engine, fhir, crypto, on_close=partial(end_app_access_in, audit)
    )
    bulk = operations_wiring.build(settings, engine, fhir)
    policy = policy_wiring.build(settings, engine, audit, fhir, pdp)
    authn = authn_wiring.build(settings, engine, crypto, audit)
    return Services(
        settings=settings,
        engine=engine,
        crypto=crypto,
        fhir=fhir,
        audit=audit,
        bulk_export=bulk.export,
        bulk_import=bulk.import_,
        identity=identity,
        record=record,
        pdp=pdp,
        accounts=authn.accounts,
        login=authn.login,
        sessions=authn.sessions,
        controls=policy.controls,
        emergency=policy.emergency,
        research_optout=policy.research_optout,
        clients=authn.clients,
        oauth=authn.oauth,
        tickets=authn.tickets,
        dev_idp=authn.dev_idp,
        pro_login=authn.pro_login,
        authenticator=authn.authenticator,
        finder=PatientFinder(fhir, crypto.blind),
        record_search=RecordSearch(fhir),
        fhir_security=authn.fhir_security,
        hub=hub_wiring.build(settings, engine, audit),
        screener=screener,
    )


@cache
def shared_routes() -> tuple[BaseRoute, ...]:
    """The routes of every app: the API's routers, then the portal's, each behind the access
    guard, included once per process. FastAPI builds an included router's route state (each
    endpoint's dependency tree, its request handler) on the first request that reaches it and
    keeps it on the inclusion, so every app holding these same inclusions shares what the first
    one built, instead of building it again for each new app (the test suite makes some 1,500).
    Nothing here belongs to one app: the routes find their app's services through
    carnet/dependencies.py, and the guard is a dependency of these routes, not of the app."""
    guarded = APIRouter(dependencies=[Depends(access_guard)])
    for router in (*API_ROUTERS, *web_wiring.ROUTERS):
        guarded.include_router(router)
    return tuple(guarded.routes)


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """The ASGI application. Until authentication lands, only loopback clients are served.

    Under ``sovereignty_strict``, raises SovereigntyRefusedError before opening anything when a
    destination is undeclared or outside the EEA."""
    refuse_unless_sovereign(settings)
    services = services or build_services(settings)
    if services.settings != settings:  # the app's settings are the ones its routers read
        services = replace(services, settings=settings, fhir_security=capability_security(settings))
    built = services

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        built.audit.start()  # the checkpointer: every N events or T seconds
        oidc_api.warn_if_development_idp(built.dev_idp)
        alerts = AlertSweeper(
            AlertService(built.engine, built.audit, built.controls).sweep,
            built.settings.alert_sweep_seconds,
        )
        alerts.start()  # the patients' alerts, queued without the CLI
        try:
            yield
        finally:
            await alerts.stop()
            built.audit.stop()

    app = FastAPI(
        title="Carnet",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # The shared routes carry the guard themselves; the app's own is for a router included
        # on one app directly (none today), guarded all the same.
        dependencies=[Depends(access_guard)],
    )
    install(app, services)  # the routers' only state, read through carnet.dependencies
    app.add_middleware(fhir_api.RefuseNulInUrl)
    app.add_middleware(LimitRequestBodies, limits=BodyLimits.from_settings(settings))
    app.add_middleware(SafeResponseHeaders)  # outermost of ours: even a 413 or a 400 gets them
    app.router.routes.extend(shared_routes())  # built once per process, state per app
    web_wiring.mount(app, settings)  # the portal's static files and page answers (docs/web.md)

    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, exc: FhirError) -> Response:
        response = fhir_api.error_response(exc)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = bearer_challenge(request)
        if exc.status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    def storage_refusal(request: Request, exc: Exception) -> Response | None:
        """507 or 503 for a full or read-only disk (database or blob store), never a 500; what
        failed was rolled back, so nothing of the request was written. None for other errors."""
        fault = storage_fault(exc, *store_places(built.engine, settings.data_dir))
        if fault is None:
            return None
        log.error("storage %s on %s %s", fault.value, request.method, request.url.path)
        return fhir_api.error_response(storage_error(fault))

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> Response:
        if not is_lock_timeout(exc):
            return storage_refusal(request, exc) or await unexpected(request, exc)
        log.warning("lock timeout on %s %s", request.method, request.url.path)
        response = fhir_api.error_response(lock_timeout_error())
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.exception_handler(OSError)
    async def storage_error_of_the_os(request: Request, exc: OSError) -> Response:
        refused = storage_refusal(request, exc)
        if refused is None:
            raise exc  # any other OSError stays a server error, handled (and raised) as before
        return refused

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge) -> Response:
        status, content_type, body = too_large_response_parts(request.url.path, exc.limit)
        return Response(
            body,
            status_code=status,
            headers={"Connection": "close", "Content-Type": content_type.decode()},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return fhir_api.error_response(FhirError.of(exc.status_code, code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        return fhir_api.error_response(
            FhirError.of(400, "invalid", "request does not match the interaction")
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Ids only: the path and the exception type, never bodies or values.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return fhir_api.error_response(FhirError.of(500, "exception", "internal error"))

    return app
