"""The policy domain's wiring (with the authn services built over it): the policy decision point (before the FHIR service, whose access
hook asks it), then the services built on the FHIR service: controls, accounts, sessions, OAuth
clients and tokens, professionals' login and the authenticator of every request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from carnet.audit.service import AuditService
from carnet.authn.clients import ClientService
from carnet.authn.guard import Authenticator
from carnet.authn.login import LoginVerifier
from carnet.authn.oauth import OAuthService
from carnet.authn.oidc import DevIdentityProvider, ProfessionalLogin
from carnet.authn.oidc_api import development_idp
from carnet.authn.outbound import https_client
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from carnet.authn.smart import capability_security
from carnet.authn.tickets import Tickets
from carnet.crypto.service import CryptoService
from carnet.fhir.service import FhirService
from carnet.fhir.wiring import FhirStore
from carnet.policy.controls import ControlsService
from carnet.policy.enforce import PolicyAccess
from carnet.policy.granular import granular_ids_for
from carnet.policy.rules import seed_rules
from carnet.policy.service import PolicyDecisionPoint
from carnet.settings import Settings


def build_decision_point(
    engine: Engine,
    store: FhirStore,
    *,
    represented: Callable[[Connection, str], Sequence[str]],
    record_open: Callable[[Connection, str], bool],
    migrate: bool = True,
) -> PolicyDecisionPoint:
    """The decision point, complete: who represents whom and whether a record takes writes come
    from the record domain; the default rules are seeded when the database was just migrated."""
    if migrate:
        with engine.begin() as conn:
            seed_rules(conn)
    return PolicyDecisionPoint(
        represented=represented,
        record_open=record_open,
        granular_ids=granular_ids_for(store.compiler, store.definitions),
    )


def access_hook(audit: AuditService, pdp: PolicyDecisionPoint) -> PolicyAccess:
    """What the FHIR service asks before each interaction (the decision, then the audit)."""
    return PolicyAccess(audit, pdp)


@dataclass(frozen=True)
class AccessServices:
    controls: ControlsService
    accounts: AccountService
    login: LoginVerifier
    sessions: SessionService
    clients: ClientService
    oauth: OAuthService
    tickets: Tickets
    dev_idp: DevIdentityProvider | None
    pro_login: ProfessionalLogin
    authenticator: Authenticator
    fhir_security: dict[str, Any]  # the CapabilityStatement's rest.security (SMART on FHIR)


def build(
    settings: Settings,
    engine: Engine,
    crypto: CryptoService,
    audit: AuditService,
    fhir: FhirService,
    pdp: PolicyDecisionPoint,
) -> AccessServices:
    """Controls, logins, sessions, OAuth and the authenticator, over one token signer."""
    accounts = AccountService(engine, crypto, settings)
    sessions = SessionService(engine, settings)
    signer = crypto.token_signer()
    clients = ClientService(engine, settings)
    tickets = Tickets(signer, settings)
    oauth = OAuthService(engine, settings, signer, clients, audit, accounts)
    return AccessServices(
        controls=ControlsService(
            engine, fhir, audit, pdp, break_glass_minutes=settings.break_glass_minutes
        ),
        accounts=accounts,
        login=LoginVerifier(accounts, audit),
        sessions=sessions,
        clients=clients,
        oauth=oauth,
        tickets=tickets,
        dev_idp=development_idp(settings, signer),
        # Calls only the issuer the operator configured (the built-in one on loopback by default).
        pro_login=ProfessionalLogin(settings, https_client(timeout=10), tickets, audit),
        authenticator=Authenticator(
            settings, signer, oauth.is_revoked, sessions=sessions, accounts=accounts
        ),
        fhir_security=capability_security(settings),
    )
