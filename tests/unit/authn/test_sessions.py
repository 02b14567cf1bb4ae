"""Sessions: second factor before use, rotation on promotion, CSRF, expiry, revocation, digests."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from carnet.app import Services
from carnet.authn.models import access_session
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionError, SessionService
from carnet.caller import Kind
from tests.support.authn import PASSWORD, Clock, account_service, session_service


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(services: Services, clock: Clock) -> AccountService:
    return account_service(services, clock)


@pytest.fixture
def sessions(services: Services, clock: Clock) -> SessionService:
    return session_service(services, clock)


@pytest.fixture
def account_id(accounts: AccountService) -> str:
    return accounts.create_person("jeanne@exemple.fr", PASSWORD, "pat-1")


def test_a_pending_session_is_not_usable_until_promoted(
    accounts: AccountService, sessions: SessionService, account_id: str
) -> None:
    cookie, csrf = sessions.open(account_id, second_factor=False)
    assert len(cookie) >= 43 and len(csrf) >= 43 and cookie != csrf  # 256 bits, url-safe
    assert sessions.principal(cookie, accounts) is None
    assert sessions.pending_account(cookie) == account_id
    assert sessions.check_csrf(cookie, csrf)

    full, full_csrf = sessions.promote(cookie)
    assert full != cookie and full_csrf != csrf
    principal = sessions.principal(full, accounts)
    assert principal is not None
    assert (principal.kind, principal.subject, principal.patient_id) == (
        Kind.PERSON,
        account_id,
        "pat-1",
    )
    # Session fixation: the id known before the second factor is dead after it.
    assert sessions.principal(cookie, accounts) is None
    assert sessions.pending_account(cookie) is None
    assert not sessions.check_csrf(cookie, csrf)
    with pytest.raises(SessionError):
        sessions.promote(cookie)
    with pytest.raises(SessionError):  # a full session is not promoted again
        sessions.promote(full)
    with pytest.raises(SessionError):  # nor is a value no one issued
        sessions.promote("attacker-chosen-session-id")


def test_csrf_token_belongs_to_its_session(
    accounts: AccountService, sessions: SessionService, account_id: str
) -> None:
    cookie, csrf = sessions.open(account_id, second_factor=True)
    other_cookie, other_csrf = sessions.open(account_id, second_factor=True)
    assert sessions.check_csrf(cookie, csrf)
    assert not sessions.check_csrf(cookie, None)
    assert not sessions.check_csrf(cookie, "")
    assert not sessions.check_csrf(cookie, csrf + "x")
    assert not sessions.check_csrf(cookie, other_csrf)
    assert not sessions.check_csrf(None, csrf)
    assert not sessions.check_csrf(cookie, "x" * 10_000)
    assert sessions.check_csrf(other_cookie, other_csrf)


def test_only_digests_are_stored(
    services: Services, sessions: SessionService, account_id: str
) -> None:
    cookie, csrf = sessions.open(account_id, second_factor=True)
    with services.engine.connect() as conn:
        row = conn.execute(select(access_session)).one()
    stored = " ".join(str(v) for v in row)
    assert cookie not in stored and csrf not in stored
    assert len(row.session_hash) == len(row.csrf_hash) == 64


def test_idle_expiry_slides_and_absolute_expiry_holds(
    services: Services, accounts: AccountService, clock: Clock, account_id: str
) -> None:
    sessions = session_service(services, clock, absolute_hours=2)
    idle = services.settings.session_minutes
    cookie, _ = sessions.open(account_id, second_factor=True)
    for _ in range(3):  # used every idle-2 minutes: still valid well past one idle period
        clock.advance(minutes=idle - 2)
        assert sessions.principal(cookie, accounts) is not None
    clock.advance(minutes=idle + 1)  # left alone longer than the idle lifetime
    assert sessions.principal(cookie, accounts) is None

    cookie, _ = sessions.open(account_id, second_factor=True)
    seen = []
    for _ in range(int(120 // (idle - 2)) + 1):  # used all along, past the absolute lifetime
        clock.advance(minutes=idle - 2)
        seen.append(sessions.principal(cookie, accounts) is not None)
    assert seen == [True] * (len(seen) - 1) + [False]


def test_a_pending_session_expires_quickly(
    accounts: AccountService, sessions: SessionService, clock: Clock, account_id: str
) -> None:
    cookie, _ = sessions.open(account_id, second_factor=False)
    clock.advance(minutes=6)
    assert sessions.pending_account(cookie) is None
    with pytest.raises(SessionError):
        sessions.promote(cookie)


def test_close_and_close_all_revoke(
    accounts: AccountService, sessions: SessionService, account_id: str
) -> None:
    first, _ = sessions.open(account_id, second_factor=True)
    second, _ = sessions.open(account_id, second_factor=True)
    third, _ = sessions.open(account_id, second_factor=True)
    assert sessions.close(first) == account_id
    assert sessions.principal(first, accounts) is None
    assert sessions.close(first) is None  # already closed
    assert sessions.principal(second, accounts) is not None
    assert sessions.close_all(account_id) == 2
    assert sessions.principal(second, accounts) is None
    assert sessions.principal(third, accounts) is None


def test_a_disabled_account_loses_its_sessions(
    accounts: AccountService, sessions: SessionService, account_id: str
) -> None:
    cookie, _ = sessions.open(account_id, second_factor=True)
    accounts.set_disabled(account_id)
    assert sessions.principal(cookie, accounts) is None


def test_purge_forgets_old_sessions(
    services: Services, sessions: SessionService, clock: Clock, account_id: str
) -> None:
    old, _ = sessions.open(account_id, second_factor=True)
    sessions.close(old)
    clock.advance(days=2)
    sessions.open(account_id, second_factor=True)  # still live: kept
    assert sessions.purge() == 1
    with services.engine.connect() as conn:
        assert conn.execute(select(access_session.c.account_id)).scalars().all() == [account_id]
