"""The one place routers get their services from: typed FastAPI dependencies.

``create_app`` installs the one :class:`~carnet.app.Services` object on the application
(:func:`install`); each dependency below hands a router the service it names, typed. No router reads
``app.state``: this module is the only reader. So the routes themselves hold nothing of one app:
``create_app`` adds the same route objects, built once per process, to every app the process makes
(carnet/app.py ``shared_routes``), and each request finds its app's services here. Hence a test
swaps a service by building the app over other services (``dataclasses.replace(services, ...)``),
not with ``app.dependency_overrides``, which those shared routes do not consult
(tests/functional/test_shared_routes.py fails when a test sets one). Tests build partial apps with
:func:`install`.

The dependencies only read state, so they are ``async``: run on the event loop, they spare each
request a hop to the thread pool and back (sync dependencies run there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, FastAPI, Request

from carnet.audit.service import AuditService
from carnet.authn.clients import ClientService
from carnet.authn.guard import check_access
from carnet.authn.login import LoginVerifier
from carnet.authn.oauth import OAuthService
from carnet.authn.oidc import DevIdentityProvider, ProfessionalLogin
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from carnet.authn.step_up import StepUp
from carnet.authn.tickets import Tickets
from carnet.fhir.operations.export import ExportService
from carnet.fhir.operations.import_ import ImportService
from carnet.fhir.service import FhirService
from carnet.hub.wiring import HubServices
from carnet.identity.service import IdentityService
from carnet.policy.break_glass import EmergencyAccess
from carnet.policy.controls import ControlsService
from carnet.record.service import RecordService
from carnet.settings import Settings

if TYPE_CHECKING:  # carnet.app imports the routers, which import this module
    from carnet.app import Services


def install(app: FastAPI, services: Services) -> None:
    """Hand ``services`` to every router of ``app`` (the application's only state)."""
    app.state.services = services


def installed(app: FastAPI) -> Services:
    """The services installed on ``app`` (for tests and tools holding the app)."""
    return cast("Services", app.state.services)


def services_of(request: Request) -> Services:
    """The services of the application serving ``request``; for helpers that take the request."""
    return installed(request.app)


def access_guard(request: Request) -> None:
    """The application-wide dependency every endpoint runs once routed: the endpoint's guard
    (carnet/authn/guard.py) with the authenticator and the audit of the request's application.
    Not ``async``: finding the caller may read the database (sessions, revoked tokens)."""
    services = services_of(request)
    check_access(request, services.authenticator, services.audit)


async def settings(request: Request) -> Settings:
    return services_of(request).settings


async def fhir_service(request: Request) -> FhirService:
    return services_of(request).fhir


async def fhir_security(request: Request) -> dict[str, Any] | None:
    """The CapabilityStatement's ``rest.security`` (SMART on FHIR), built once with the app."""
    return services_of(request).fhir_security


async def audit_service(request: Request) -> AuditService:
    return services_of(request).audit


async def export_service(request: Request) -> ExportService:
    return services_of(request).bulk_export


async def import_service(request: Request) -> ImportService:
    return services_of(request).bulk_import


async def identity_service(request: Request) -> IdentityService:
    return services_of(request).identity


async def record_service(request: Request) -> RecordService:
    return services_of(request).record


async def controls_service(request: Request) -> ControlsService:
    return services_of(request).controls


async def emergency_access(request: Request) -> EmergencyAccess:
    return services_of(request).emergency


async def account_service(request: Request) -> AccountService:
    return services_of(request).accounts


async def login_verifier(request: Request) -> LoginVerifier:
    return services_of(request).login


async def session_service(request: Request) -> SessionService:
    return services_of(request).sessions


async def client_service(request: Request) -> ClientService:
    return services_of(request).clients


async def oauth_service(request: Request) -> OAuthService:
    return services_of(request).oauth


async def tickets(request: Request) -> Tickets:
    return services_of(request).tickets


async def professional_login(request: Request) -> ProfessionalLogin:
    return services_of(request).pro_login


async def development_idp(request: Request) -> DevIdentityProvider | None:
    """The built-in development identity provider, or None when professionals log in elsewhere."""
    return services_of(request).dev_idp


SettingsDep = Annotated[Settings, Depends(settings)]
FhirDep = Annotated[FhirService, Depends(fhir_service)]
FhirSecurityDep = Annotated[dict[str, Any] | None, Depends(fhir_security)]
AuditDep = Annotated[AuditService, Depends(audit_service)]
ExportDep = Annotated[ExportService, Depends(export_service)]
ImportDep = Annotated[ImportService, Depends(import_service)]
IdentityDep = Annotated[IdentityService, Depends(identity_service)]
RecordDep = Annotated[RecordService, Depends(record_service)]
ControlsDep = Annotated[ControlsService, Depends(controls_service)]
EmergencyDep = Annotated[EmergencyAccess, Depends(emergency_access)]
AccountsDep = Annotated[AccountService, Depends(account_service)]
LoginDep = Annotated[LoginVerifier, Depends(login_verifier)]
SessionsDep = Annotated[SessionService, Depends(session_service)]
ClientsDep = Annotated[ClientService, Depends(client_service)]
OAuthDep = Annotated[OAuthService, Depends(oauth_service)]
TicketsDep = Annotated[Tickets, Depends(tickets)]
ProLoginDep = Annotated[ProfessionalLogin, Depends(professional_login)]
DevIdpDep = Annotated[DevIdentityProvider | None, Depends(development_idp)]


async def step_up(login: LoginDep, audit: AuditDep) -> StepUp:
    """The step-up check of the sensitive controls (password and a fresh code again)."""
    return StepUp(login, audit)


StepUpDep = Annotated[StepUp, Depends(step_up)]


async def hub_services(request: Request) -> HubServices:
    """The research hub's services (always built by ``build_services``)."""
    hub = services_of(request).hub
    if hub is None:
        raise RuntimeError("the hub's services were not built")
    return hub


HubDep = Annotated[HubServices, Depends(hub_services)]
