"""Helpers for authentication tests: a clock tests move by hand, and the services built with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from argon2 import PasswordHasher
from fastapi import FastAPI

from carnet.app import Services
from carnet.authn import api as login_api
from carnet.authn.passwords import Passwords
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService

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
        audit=services.audit,
        now=clock,
        passwords=options.pop("passwords", FAST_PASSWORDS),
        **options,
    )


def session_service(services: Services, clock: Clock, **options: Any) -> SessionService:
    return SessionService(services.engine, services.settings, now=clock, **options)


def totp_code(uri: str, clock: Clock, offset: int = 0) -> str:
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    return totp.at(clock(), counter_offset=offset)


def login_app(services: Services, accounts: AccountService, sessions: SessionService) -> FastAPI:
    """The /auth router alone, wired the way carnet/app.py wires services."""
    app = FastAPI()
    app.state.settings = services.settings
    app.state.services = services
    app.state.accounts = accounts
    app.state.sessions = sessions
    app.include_router(login_api.router)
    return app
