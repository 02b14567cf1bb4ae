"""Login throttling: growing delays per (login, address), a looser ceiling per login that spares the
owner's own addresses, never a lockout anyone can trigger."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import select

from carnet.app import Services
from carnet.audit.models import audit_event
from carnet.authn.login import LoginVerifier
from carnet.authn.models import access_login_attempt
from carnet.authn.service import AccountService, LoginFailedError, LoginThrottledError
from carnet.policy.models import access_alert
from tests.support.authn import (
    FAST_PASSWORDS,
    PASSWORD,
    Clock,
    account_service,
    login_verifier,
    totp_code,
)

LOGIN = "jeanne.martin@exemple-sante.fr"
OWNER = "198.51.100.7"
ATTACKER = "203.0.113.9"
WRONG = "guess guess guess"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(services: Services, clock: Clock) -> AccountService:
    return account_service(services, clock)


@pytest.fixture
def login(services: Services, accounts: AccountService) -> LoginVerifier:
    return login_verifier(services, accounts)


def _fail(verifier: LoginVerifier, source: str, login: str = LOGIN) -> None:
    with pytest.raises(LoginFailedError):
        verifier.verify_password_login(login, WRONG, source)


def _retry_after(login: LoginVerifier, source: str, password: str = PASSWORD) -> int:
    with pytest.raises(LoginThrottledError) as throttled:
        login.verify_password_login(LOGIN, password, source)
    return throttled.value.retry_after


def _rows(services: Services, table: Any) -> list[Any]:
    with services.engine.connect() as conn:
        return list(conn.execute(select(table)).all())


def test_failures_from_one_address_make_it_wait_longer_and_longer(
    login: LoginVerifier, accounts: AccountService, services: Services, clock: Clock
) -> None:
    settings = services.settings
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    for _ in range(settings.login_max_failures):
        _fail(login, ATTACKER)
    first = settings.login_backoff_seconds
    waits = []
    for _ in range(4):
        wait = _retry_after(login, ATTACKER)  # even the right password must wait
        waits.append(wait)
        clock.advance(seconds=wait)
        _fail(login, ATTACKER)
    assert waits == [first, 2 * first, 4 * first, 8 * first]
    # Capped at lockout_minutes, however many failures.
    for _ in range(20):
        clock.advance(seconds=_retry_after(login, ATTACKER))
        _fail(login, ATTACKER)
    assert _retry_after(login, ATTACKER) == settings.lockout_minutes * 60
    clock.advance(minutes=settings.lockout_minutes)
    assert login.verify_password_login(LOGIN, PASSWORD, ATTACKER) == account_id


def test_retrying_early_does_not_lengthen_the_wait_and_costs_no_attempt(
    login: LoginVerifier, accounts: AccountService, services: Services, clock: Clock
) -> None:
    accounts.create_person(LOGIN, PASSWORD, "pat-1")
    for _ in range(services.settings.login_max_failures):
        _fail(login, ATTACKER)
    recorded = len(_rows(services, access_login_attempt))
    first = _retry_after(login, ATTACKER, WRONG)
    for _ in range(5):
        assert _retry_after(login, ATTACKER, WRONG) == first
    assert len(_rows(services, access_login_attempt)) == recorded
    with services.engine.connect() as conn:
        events = [orjson.loads(b) for b in conn.execute(select(audit_event.c.body)).scalars()]
    throttled = [e for e in events if e["action"] == "login-failed" and e["outcome"] == 429]
    assert len(throttled) == 6  # each refusal is audited all the same


def test_an_attackers_failures_from_another_address_do_not_keep_the_owner_out(
    login: LoginVerifier, accounts: AccountService, services: Services, clock: Clock
) -> None:
    """Five (or fifty) wrong passwords from elsewhere: the owner signs in from their address."""
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    answers = set()
    for _ in range(services.settings.login_max_failures * 10):
        try:
            login.verify_password_login(LOGIN, WRONG, ATTACKER)
        except (LoginFailedError, LoginThrottledError) as exc:
            answers.add(type(exc))
        clock.advance(seconds=1)
    assert answers == {LoginFailedError, LoginThrottledError}
    _retry_after(login, ATTACKER)  # the attacker waits
    assert login.verify_password_login(LOGIN, PASSWORD, OWNER) == account_id


def test_a_success_from_an_address_clears_its_delays(
    login: LoginVerifier, accounts: AccountService, services: Services, clock: Clock
) -> None:
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    for _ in range(services.settings.login_max_failures):
        _fail(login, OWNER)
    clock.advance(seconds=_retry_after(login, OWNER))
    assert login.verify_password_login(LOGIN, PASSWORD, OWNER) == account_id
    _fail(login, OWNER)  # a typo right after: no wait
    assert login.verify_password_login(LOGIN, PASSWORD, OWNER) == account_id


def test_the_account_ceiling_refuses_new_addresses_but_not_the_owners_familiar_one(
    services: Services, clock: Clock
) -> None:
    ceiling = 8
    accounts = AccountService(
        services.engine,
        services.crypto,
        services.settings.with_(login_account_ceiling=ceiling),
        now=clock,
        passwords=FAST_PASSWORDS,
    )
    login = login_verifier(services, accounts)
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    uri = accounts.enroll_totp(account_id)
    clock.advance(days=-2)
    assert login.verify_password_login(LOGIN, PASSWORD, OWNER) == account_id
    login.verify_totp(account_id, totp_code(uri, clock), OWNER)  # a full login: familiar now
    clock.advance(days=2)
    for n in range(ceiling):  # a botnet: one guess per address
        _fail(login, f"203.0.113.{n + 10}")
    # A new address is refused, even with the right password; the owner's is not.
    assert _retry_after(login, "192.0.2.50") == services.settings.lockout_minutes * 60
    assert login.verify_password_login(LOGIN, PASSWORD, OWNER) == account_id
    alerts = _rows(services, access_alert)
    assert [(a.kind, a.subject, a.patient_id) for a in alerts] == [("lockout", account_id, "pat-1")]
    account = accounts.account(account_id)
    assert account is not None and account.failed_logins == ceiling
    clock.advance(days=1)  # the failures age out
    assert login.verify_password_login(LOGIN, PASSWORD, "192.0.2.50") == account_id


def test_totp_guessing_is_throttled_per_address_like_passwords(
    login: LoginVerifier, accounts: AccountService, services: Services, clock: Clock
) -> None:
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    uri = accounts.enroll_totp(account_id)
    right = totp_code(uri, clock)
    wrong = f"{(int(right) + 500000) % 1000000:06d}"
    for _ in range(services.settings.login_max_failures):
        with pytest.raises(LoginFailedError):
            login.verify_totp(account_id, wrong, ATTACKER)
    with pytest.raises(LoginThrottledError):
        login.verify_totp(account_id, right, ATTACKER)
    login.verify_totp(account_id, right, OWNER)  # the owner's address is not held back


def test_a_right_password_does_not_reset_the_count_of_wrong_codes(
    login: LoginVerifier, accounts: AccountService, services: Services, clock: Clock
) -> None:
    """Who knows the password cannot guess the second factor by logging in again between codes."""
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    uri = accounts.enroll_totp(account_id)
    answers = []
    for _ in range(services.settings.login_max_failures + 1):
        assert login.verify_password_login(LOGIN, PASSWORD, ATTACKER) == account_id
        right = totp_code(uri, clock)
        try:
            login.verify_totp(account_id, f"{(int(right) + 500000) % 1000000:06d}", ATTACKER)
        except (LoginFailedError, LoginThrottledError) as exc:
            answers.append(type(exc))
    assert answers[-1] is LoginThrottledError
    assert answers[:-1] == [LoginFailedError] * services.settings.login_max_failures


def test_password_guesses_do_not_hold_up_the_owners_second_factor(
    login: LoginVerifier, accounts: AccountService, services: Services, clock: Clock
) -> None:
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    uri = accounts.enroll_totp(account_id)
    for _ in range(services.settings.login_max_failures):
        _fail(login, OWNER)  # the owner's own typos, from their address
    clock.advance(seconds=_retry_after(login, OWNER))
    assert login.verify_password_login(LOGIN, PASSWORD, OWNER) == account_id
    login.verify_totp(account_id, totp_code(uri, clock), OWNER)
