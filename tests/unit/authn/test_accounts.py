"""Accounts: creation, password login, per-source rate limit, TOTP, audit and alerts (the
growing delays and the per-account ceiling: test_throttle.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text

from carnet.app import Services
from carnet.audit.models import audit_event_patient
from carnet.authn.login import LoginVerifier
from carnet.authn.models import access_account, access_login_attempt
from carnet.authn.passwords import PasswordPolicyError
from carnet.authn.service import (
    AccountError,
    AccountExistsError,
    AccountService,
    LoginFailedError,
    LoginThrottledError,
    SpaceHasAccountError,
    UnknownAccountError,
)
from carnet.caller import Kind
from carnet.policy.models import access_alert
from tests.support.audit_log import logged_events
from tests.support.authn import PASSWORD, Clock, account_service, login_verifier, totp_code

LOGIN = "jeanne.martin@exemple-sante.fr"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(services: Services, clock: Clock) -> AccountService:
    return account_service(services, clock)


@pytest.fixture
def login(services: Services, accounts: AccountService) -> LoginVerifier:
    return login_verifier(services, accounts)


def _rows(services: Services, table: Any) -> list[Any]:
    with services.engine.connect() as conn:
        return list(conn.execute(select(table)).all())


def test_person_logs_in_and_acts_for_their_record(
    login: LoginVerifier, accounts: AccountService, services: Services
) -> None:
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    assert login.verify_password_login(LOGIN, PASSWORD, "10.0.0.1") == account_id
    # Logins compare case-insensitively, around spaces.
    assert login.verify_password_login(f"  {LOGIN.upper()} ", PASSWORD, "10.0.0.1") == account_id
    principal = accounts.principal_for(account_id)
    assert (principal.kind, principal.subject, principal.patient_id) == (
        Kind.PERSON,
        account_id,
        "pat-1",
    )
    row = _rows(services, access_account)[0]
    assert row.login_hash != LOGIN and len(row.login_hash) == 32
    assert row.password_hash.startswith("$argon2id$")
    attempts = _rows(services, access_login_attempt)
    assert [a.success for a in attempts] == [True, True]
    assert all(a.login_hash == row.login_hash and a.source == "10.0.0.1" for a in attempts)
    event = logged_events(services)[-1]
    assert (event["action"], event["actor"], event["outcome"]) == ("login", account_id, 200)
    assert LOGIN not in orjson.dumps(logged_events(services)).decode()
    # The person sees their own logins in their history (their record's slice).
    with services.engine.connect() as conn:
        slices = conn.execute(select(audit_event_patient.c.patient_id)).scalars().all()
    assert set(slices) == {"pat-1"}


def test_professional_and_operator_principals(
    login: LoginVerifier, accounts: AccountService
) -> None:
    pro = accounts.create_professional("dr.house", PASSWORD, "10003456789", "physician")
    oidc_only = accounts.create_professional("nurse@psc", None, "10009999999", "nurse")
    operator = accounts.create_operator("ops", PASSWORD)
    principal = accounts.principal_for(pro)
    assert (principal.kind, principal.rpps, principal.profession) == (
        Kind.PROFESSIONAL,
        "10003456789",
        "physician",
    )
    assert principal.role == "professional:physician"
    found = accounts.find_by_rpps("10009999999")
    assert found is not None and found.account_id == oidc_only and not found.has_password
    assert accounts.find_by_rpps("10000000000") is None
    assert accounts.principal_for(operator).scopes == frozenset({"system/*.*"})
    assert accounts.principal_for(operator).kind is Kind.OPERATOR
    with pytest.raises(LoginFailedError):  # OIDC-only: no password login
        login.verify_password_login("nurse@psc", PASSWORD, "10.0.0.1")
    with pytest.raises(AccountExistsError):
        accounts.create_professional("other", None, "10003456789", "nurse")
    with pytest.raises(AccountError):
        accounts.create_professional("other", None, "10003456780", "astrologer")


def test_creation_refuses_duplicates_and_weak_passwords(accounts: AccountService) -> None:
    accounts.create_person(LOGIN, PASSWORD, "pat-1")
    with pytest.raises(AccountExistsError):
        accounts.create_person(LOGIN.upper(), PASSWORD, "pat-2")
    with pytest.raises(PasswordPolicyError):
        accounts.create_person("someone", "short", "pat-3")
    with pytest.raises(PasswordPolicyError):
        accounts.create_operator("administrator", "administrator!!")
    with pytest.raises(UnknownAccountError):
        accounts.principal_for("no-such-account")


@pytest.mark.both_backends
def test_two_person_accounts_for_one_space_at_once_make_one(
    services: Services, accounts: AccountService
) -> None:
    """One person account per space, even raced: a second insertion that began before the first
    committed (past the service's check, which cannot see it) is refused by the unique index,
    with the space's answer (SpaceHasAccountError), not the login-taken one."""
    first = accounts.new_person("un@example.org", PASSWORD)
    outcome: list[AccountError | str] = []

    def second() -> None:
        try:
            outcome.append(accounts.create_person("deux@example.org", PASSWORD, "pat-1"))
        except AccountError as exc:  # the answer is what this test checks
            outcome.append(exc)

    with services.engine.begin() as conn:
        accounts.insert_in(conn, first, patient_id="pat-1")
        racer = threading.Thread(target=second)
        racer.start()
        if services.engine.dialect.name == "postgresql":  # wait until it waits on the index
            deadline = time.monotonic() + 20
            with services.engine.connect() as probe:
                while (
                    time.monotonic() < deadline
                    and not probe.execute(
                        text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    ).scalar_one()
                ):
                    time.sleep(0.02)
    racer.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], SpaceHasAccountError), outcome
    assert accounts.find_by_login("deux@example.org") is None


def test_wrong_password_and_unknown_login_get_the_same_answer(
    login: LoginVerifier, accounts: AccountService, services: Services
) -> None:
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    with pytest.raises(LoginFailedError) as wrong:
        login.verify_password_login(LOGIN, "not the password at all", "10.0.0.1")
    with pytest.raises(LoginFailedError) as unknown:
        login.verify_password_login("nobody@exemple.fr", PASSWORD, "10.0.0.1")
    assert str(wrong.value) == str(unknown.value) == "invalid login or password"
    attempts = _rows(services, access_login_attempt)
    assert [a.success for a in attempts] == [False, False]
    failed = [e for e in logged_events(services) if e["action"] == "login-failed"]
    assert [e["actor"] for e in failed] == [account_id, "unknown"]
    assert accounts.account(account_id).failed_logins == 1  # type: ignore[union-attr]


def test_unknown_login_is_throttled_the_same_way(
    login: LoginVerifier, accounts: AccountService, services: Services
) -> None:
    """Nothing in the answers distinguishes an unknown login from a known one being guessed."""
    accounts.create_person(LOGIN, PASSWORD, "pat-1")
    answers: dict[str, list[str]] = {}
    for name in (LOGIN, "nobody@exemple.fr"):
        for _ in range(services.settings.login_max_failures + 1):
            try:
                login.verify_password_login(name, "guess guess guess", "10.0.0.2")
            except AccountError as exc:
                answers.setdefault(name, []).append(f"{type(exc).__name__}: {exc}")
    assert answers[LOGIN] == answers["nobody@exemple.fr"]
    assert answers[LOGIN][-1].startswith("LoginThrottledError")


def test_per_source_rate_limit_spans_logins(services: Services, clock: Clock) -> None:
    accounts = account_service(services, clock)
    login = login_verifier(services, accounts, source_max_failures=3, source_window_minutes=15)
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    for n in range(3):  # password spraying: one guess per login, all from one address
        with pytest.raises(LoginFailedError):
            login.verify_password_login(f"user{n}@exemple.fr", "guess guess guess", "203.0.113.9")
    with pytest.raises(LoginThrottledError):
        login.verify_password_login(LOGIN, PASSWORD, "203.0.113.9")
    # Another address is not affected; the account itself is not locked.
    assert login.verify_password_login(LOGIN, PASSWORD, "198.51.100.7") == account_id
    alerts = _rows(services, access_alert)
    assert [(a.kind, a.subject) for a in alerts] == [("login-throttled", "203.0.113.9")]
    clock.advance(minutes=16)
    assert login.verify_password_login(LOGIN, PASSWORD, "203.0.113.9") == account_id


def test_totp_enrolment_verification_and_replay(
    login: LoginVerifier, accounts: AccountService, services: Services, clock: Clock
) -> None:
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    uri = accounts.enroll_totp(account_id)
    assert uri.startswith("otpauth://totp/Carnet:") and "issuer=Carnet" in uri
    assert "jeanne" not in uri  # the label is the account id, never the login
    seed = uri.split("secret=")[1].split("&")[0]
    row = _rows(services, access_account)[0]
    assert seed.encode() not in row.totp_secret
    assert accounts.account(account_id).has_totp  # type: ignore[union-attr]

    with pytest.raises(LoginFailedError):
        login.verify_totp(account_id, "000000" if totp_code(uri, clock) != "000000" else "1", "h")
    login.verify_totp(account_id, totp_code(uri, clock), "10.0.0.1")
    with pytest.raises(LoginFailedError):  # the same code, again: refused
        login.verify_totp(account_id, totp_code(uri, clock), "10.0.0.1")
    with pytest.raises(LoginFailedError):  # an older step than the one used: refused
        login.verify_totp(account_id, totp_code(uri, clock, -1), "10.0.0.1")
    clock.advance(seconds=30)
    login.verify_totp(account_id, totp_code(uri, clock), "10.0.0.1")
    clock.advance(seconds=120)
    with pytest.raises(LoginFailedError):  # a code two steps old
        login.verify_totp(account_id, totp_code(uri, clock, -2), "10.0.0.1")
    rules = [e["rule"] for e in logged_events(services) if e["action"] == "login"]
    assert rules == ["authn:totp", "authn:totp"]


def test_disabled_account_cannot_log_in(login: LoginVerifier, accounts: AccountService) -> None:
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    accounts.set_disabled(account_id)
    with pytest.raises(LoginFailedError, match="invalid login or password"):
        login.verify_password_login(LOGIN, PASSWORD, "10.0.0.1")
    with pytest.raises(UnknownAccountError):
        accounts.principal_for(account_id)
    accounts.set_disabled(account_id, False)
    assert login.verify_password_login(LOGIN, PASSWORD, "10.0.0.1") == account_id


def test_set_password_replaces_the_old_one(login: LoginVerifier, accounts: AccountService) -> None:
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    accounts.set_password(account_id, "a brand new passphrase", LOGIN)
    with pytest.raises(LoginFailedError):
        login.verify_password_login(LOGIN, PASSWORD, "10.0.0.1")
    assert login.verify_password_login(LOGIN, "a brand new passphrase", "10.0.0.1") == account_id
