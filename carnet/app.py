"""create_app(settings): wires services and routers; nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx2 as httpx
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from carnet.access.enforce import PolicyAccess
from carnet.audit import api as audit_api
from carnet.audit.service import AuditService
from carnet.authn import api as login_api
from carnet.authn import oauth_api, oidc_api
from carnet.authn.clients import ClientService
from carnet.authn.guard import Authenticator, bearer_challenge, guard_dependency
from carnet.authn.oauth import OAuthService
from carnet.authn.oidc import DevIdentityProvider, ProfessionalLogin
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from carnet.authn.smart import capability_security
from carnet.authn.tickets import Tickets
from carnet.crypto.service import CryptoService, open_keyring
from carnet.db.engine import RETRY_AFTER_SECONDS, is_lock_timeout, make_engine
from carnet.db.maintenance import analyze_if_missing
from carnet.db.migrate import upgrade
from carnet.fhir import api as fhir_api
from carnet.fhir.attachments import BlobStore
from carnet.fhir.definitions import load_definitions
from carnet.fhir.errors import FhirError, lock_timeout_error
from carnet.fhir.import_files import ImportLimits
from carnet.fhir.indexer import Indexer
from carnet.fhir.operations import api as operations_api
from carnet.fhir.operations.export import ExportService
from carnet.fhir.operations.import_ import ImportService
from carnet.fhir.operations.jobs import JobRunner, JobStore
from carnet.fhir.query import Compiler
from carnet.fhir.repository import Repository
from carnet.fhir.service import FhirService
from carnet.fhir.validation import Validator
from carnet.identity import api as identity_api
from carnet.identity.ins_anywhere import refuse_broken_ins
from carnet.identity.register_store import open_register
from carnet.identity.service import IdentityService
from carnet.policy import api as access_api
from carnet.policy.controls import ControlsService
from carnet.policy.granular import granular_ids_for
from carnet.policy.rules import seed_rules
from carnet.policy.service import PolicyDecisionPoint
from carnet.private_files import private_dir
from carnet.record import api as record_api
from carnet.record.service import RecordService, accepts_writes
from carnet.settings import Settings
from carnet.web_safety import (
    BodyLimits,
    BodyTooLarge,
    LimitRequestBodies,
    SafeResponseHeaders,
    too_large_response_parts,
)

log = logging.getLogger("carnet")


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
    sessions: SessionService
    controls: ControlsService
    clients: ClientService
    oauth: OAuthService
    tickets: Tickets
    dev_idp: DevIdentityProvider | None
    pro_login: ProfessionalLogin
    authenticator: Authenticator

    def close(self) -> None:
        self.bulk_export.runner.wait_all()  # bulk jobs hold connections until they finish
        self.bulk_import.runner.wait_all()
        self.pro_login.http.close()
        self.oauth.key_sets.close()
        self.audit.stop()
        self.audit.flush()  # publish what this process recorded (CLI commands, tests)
        self.engine.dispose()


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Open the database (applying migrations), the keyring and the FHIR engine."""
    private_dir(settings.data_dir)
    private_dir(settings.blob_dir)
    engine = make_engine(
        settings.database_url,
        sqlite_cache_mib=settings.sqlite_cache_mib,
        lock_timeout_seconds=settings.write_lock_seconds,
    )
    if migrate:
        upgrade(engine)
        analyze_if_missing(engine)
        with engine.begin() as conn:
            seed_rules(conn)
    crypto = CryptoService(open_keyring(settings), key_dir=settings.data_dir)
    definitions = load_definitions(settings.definitions_dir)
    blobs = BlobStore(
        settings.blob_dir, crypto.data_keys, crypto.blind, settings.max_attachment_bytes
    )
    indexer = Indexer(definitions, crypto.blind, settings.max_indexed_chars)
    repository = Repository(engine, crypto.data_keys, indexer, blobs)
    audit = AuditService(
        engine,
        crypto.audit_signer(),
        checkpoint_events=settings.audit_checkpoint_events,
        checkpoint_seconds=settings.audit_checkpoint_seconds,
    )
    compiler = Compiler(definitions, crypto.blind)
    pdp = PolicyDecisionPoint(
        record_open=accepts_writes, granular_ids=granular_ids_for(compiler, definitions)
    )
    fhir = FhirService(
        repository,
        definitions,
        Validator(definitions, max_resource_bytes=settings.max_resource_bytes),
        compiler,
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
        max_search_terms=settings.max_search_terms,
        access=PolicyAccess(audit, pdp),
    )
    jobs = JobStore(engine)
    runner = JobRunner(jobs)
    bulk_export = ExportService(
        fhir, jobs, runner, settings.export_dir, timedelta(hours=settings.export_retention_hours)
    )
    bulk_import = ImportService(
        fhir, jobs, runner, settings.import_dir, ImportLimits.from_settings(settings)
    )
    identity = IdentityService(
        fhir,
        crypto.data_keys,
        crypto.blind,
        link_threshold=settings.identity_link_threshold,
        review_threshold=settings.identity_review_threshold,
        register=open_register(repository, crypto.data_keys, crypto.blind),
    )
    fhir.patient_hooks.append(identity.on_patient_write)
    fhir.body_checks.append(refuse_broken_ins)  # a broken INS anywhere in a body: 422
    fhir.deposit_hooks.append(identity.on_create)  # documents naming their patient by identity
    record = RecordService(
        fhir,
        crypto.blind,
        objection_window_days=settings.objection_window_days,
        retention_years=settings.record_retention_years,
    )
    pdp.represented = record.represented_patients_in
    accounts = AccountService(engine, crypto, settings, audit=audit)
    sessions = SessionService(engine, settings)
    signer = crypto.token_signer()
    clients = ClientService(engine, settings)
    tickets = Tickets(signer, settings)
    oauth = OAuthService(engine, settings, signer, clients, audit, accounts)
    return Services(
        settings=settings,
        engine=engine,
        crypto=crypto,
        fhir=fhir,
        audit=audit,
        bulk_export=bulk_export,
        bulk_import=bulk_import,
        identity=identity,
        record=record,
        pdp=pdp,
        accounts=accounts,
        sessions=sessions,
        controls=ControlsService(
            engine, fhir, audit, pdp, break_glass_minutes=settings.break_glass_minutes
        ),
        clients=clients,
        oauth=oauth,
        tickets=tickets,
        dev_idp=oidc_api.development_idp(settings, signer),
        # Calls only the issuer the operator configured (the built-in one on loopback by default).
        pro_login=ProfessionalLogin(settings, httpx.Client(timeout=10), tickets, audit),
        authenticator=Authenticator(
            settings, signer, oauth.is_revoked, sessions=sessions, accounts=accounts
        ),
    )


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """The ASGI application. Until authentication lands, only loopback clients are served."""
    services = services or build_services(settings)
    built = services

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        built.audit.start()  # the checkpointer: every N events or T seconds
        oidc_api.warn_if_development_idp(built.dev_idp)
        try:
            yield
        finally:
            built.audit.stop()

    app = FastAPI(
        title="Carnet",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(guard_dependency(services.authenticator, services.audit))],
    )
    app.state.settings = settings
    app.state.services = services
    app.state.fhir_security = capability_security(settings)  # rest.security of /fhir/metadata
    app.state.fhir = services.fhir
    app.add_middleware(fhir_api.RefuseNulInUrl)
    app.add_middleware(LimitRequestBodies, limits=BodyLimits.from_settings(settings))
    app.add_middleware(SafeResponseHeaders)  # outermost of ours: even a 413 or a 400 gets them
    app.include_router(oauth_api.router)  # before the generic routes: /fhir/.well-known/...
    app.include_router(audit_api.router)  # before the generic /fhir/{type} routes
    app.include_router(operations_api.router)  # before the generic routes: /Patient/$export
    app.include_router(fhir_api.router)
    app.include_router(identity_api.router)
    app.include_router(login_api.router)
    app.include_router(access_api.router)
    app.include_router(record_api.router)
    app.include_router(oidc_api.router)
    app.state.accounts = services.accounts
    app.state.sessions = services.sessions
    app.state.controls = services.controls
    app.state.clients = services.clients
    app.state.oauth = services.oauth
    app.state.tickets = services.tickets
    app.state.dev_idp = services.dev_idp
    app.state.pro_login = services.pro_login

    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, exc: FhirError) -> Response:
        response = fhir_api.error_response(exc)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = bearer_challenge(request)
        if exc.status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.exception_handler(OperationalError)
    async def database_error(request: Request, exc: OperationalError) -> Response:
        if not is_lock_timeout(exc):
            return await unexpected(request, exc)
        log.warning("lock timeout on %s %s", request.method, request.url.path)
        response = fhir_api.error_response(lock_timeout_error())
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

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

    @app.get("/", include_in_schema=False)
    def home() -> dict[str, str]:
        return {"service": "Carnet", "fhir": "/fhir/metadata"}

    return app
