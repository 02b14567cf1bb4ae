"""Helpers for authentication tests: a clock tests move by hand, and the services built with it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from argon2 import PasswordHasher
from fastapi import APIRouter, FastAPI

from carnet.app import Services
from carnet.authn import api as login_api
from carnet.authn.login import LoginVerifier
from carnet.authn.passwords import Passwords
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from carnet.dependencies import install

PASSWORD = "correct horse battery staple"
# Real argon2id with small parameters: the suite runs on two shared cores.
FAST_PASSWORDS = Passwords(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))


@dataclass
class Clock:
    """Now, as the tests say; starts at a fixed instant in the middle of a TOTP step."""

    moment: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


def account_service(services: Services, clock: Clock, **options: Any) -> AccountService:
    return AccountService(
        services.engine,
        services.crypto,
        services.settings,
        now=clock,
        passwords=options.pop("passwords", FAST_PASSWORDS),
        **options,
    )


def login_verifier(services: Services, accounts: AccountService, **options: Any) -> LoginVerifier:
    """Login checks over ``accounts`` (on their clock), audited by the services' audit."""
    return LoginVerifier(accounts, services.audit, **options)


def session_service(services: Services, clock: Clock, **options: Any) -> SessionService:
    return SessionService(services.engine, services.settings, now=clock, **options)


def totp_code(uri: str, clock: Clock, offset: int = 0) -> str:
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    return totp.at(clock(), counter_offset=offset)


def partial_app(services: Services, *routers: APIRouter, app: FastAPI | None = None) -> FastAPI:
    """Only ``routers``, over ``services`` installed the way carnet/app.py installs them (swap a
    service with ``dataclasses.replace``, e.g. accounts on a test's clock)."""
    app = app or FastAPI()
    install(app, services)
    for router in routers:
        app.include_router(router)
    return app


def login_app(services: Services, accounts: AccountService, sessions: SessionService) -> FastAPI:
    """The /auth router alone, over ``services`` with these accounts (and login checks over them)
    and sessions."""
    wired = replace(
        services,
        accounts=accounts,
        login=login_verifier(services, accounts),
        sessions=sessions,
    )
    return partial_app(wired, login_api.router)
