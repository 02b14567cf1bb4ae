"""The authn domain's wiring: who is calling. Accounts and their login checks, portal sessions,
OAuth clients, the authorisation server with its grants and revoked-token list, professionals'
OpenID Connect login (and the built-in development identity provider), and the authenticator of
every request, all over one token signer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from carnet.audit.service import AuditService
from carnet.authn.clients import ClientService
from carnet.authn.grants import RevocationList
from carnet.authn.guard import Authenticator
from carnet.authn.login import LoginVerifier
from carnet.authn.oauth import OAuthService
from carnet.authn.oidc import DevIdentityProvider, ProfessionalLogin
from carnet.authn.oidc_api import development_idp
from carnet.authn.outbound import LazyHttpsClient
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from carnet.authn.smart import capability_security
from carnet.authn.tickets import Tickets
from carnet.crypto.service import CryptoService
from carnet.settings import Settings


@dataclass(frozen=True)
class AuthnServices:
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
    settings: Settings, engine: Engine, crypto: CryptoService, audit: AuditService
) -> AuthnServices:
    """Accounts, logins, sessions, OAuth and the authenticator, over one token signer; the
    revoked-token list is shared by the authorisation server (which fills it) and the
    authenticator (which reads it for every bearer token)."""
    accounts = AccountService(engine, crypto, settings)
    sessions = SessionService(engine, settings)
    signer = crypto.token_signer()
    clients = ClientService(engine, settings)
    tickets = Tickets(signer, settings)
    revocations = RevocationList(engine)
    oauth = OAuthService(
        engine, settings, signer, clients, audit, accounts, revocations=revocations
    )
    return AuthnServices(
        accounts=accounts,
        login=LoginVerifier(accounts, audit),
        sessions=sessions,
        clients=clients,
        oauth=oauth,
        tickets=tickets,
        dev_idp=development_idp(settings, signer),
        # Calls only the issuer the operator configured (the built-in one on loopback by default).
        pro_login=ProfessionalLogin(settings, LazyHttpsClient(timeout=10), tickets, audit),
        authenticator=Authenticator(
            settings, signer, revocations.is_revoked, sessions=sessions, accounts=accounts
        ),
        fhir_security=capability_security(settings),
    )
