"""A forgotten password through the outbox: the code reaches the person's notification, never the
page; with it they choose a new password and their sessions end; the page says the same for an
unknown login; a wrong code changes nothing."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carnet.app import Services, create_app
from carnet.audit.models import audit_event, audit_event_patient
from carnet.authn.api import SESSION_COOKIE
from carnet.authn.clients import ClientKind
from carnet.authn.service import Account, AccountService, LoginThrottledError
from carnet.db.instants import utc_now
from carnet.record.notifications import PASSWORD_RESET
from tests.spec.helpers import patient
from tests.support.authn import (
    FAST_PASSWORDS,
    PASSWORD,
    Clock,
    account_service,
    login_verifier,
    totp_code,
)
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.oauth import APP_SCOPES, REDIRECT, oauth_env

LOGIN = "oubli@example.org"
NEW_PASSWORD = "une toute nouvelle phrase de passe"


@dataclass
class Setup:
    client: TestClient
    services: Services
    account: str
    patient_id: str


@pytest.fixture
def setup(sqlite_services: Services) -> Iterator[Setup]:
    services = sqlite_services
    pid = services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    services.record.open_space(pid, ctx=AS_LOCAL_OPERATOR)
    account = account_service(services, Clock()).create_person(LOGIN, PASSWORD, pid)
    with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c:
        yield Setup(c, services, account, pid)


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _ask(setup: Setup, login: str) -> str:
    token = _token(setup.client.get("/mot-de-passe-oublie").text)
    answer = setup.client.post("/mot-de-passe-oublie", data={"csrf_token": token, "login": login})
    assert answer.status_code == 200
    return answer.text


def _reset_codes(setup: Setup) -> list[str]:
    return [
        n.secret or ""
        for n in setup.services.record.pending_notifications()
        if n.kind == PASSWORD_RESET and n.patient_id == setup.patient_id
    ]


def test_a_reset_code_goes_to_the_outbox_and_sets_a_new_password(setup: Setup) -> None:
    old_cookie, _ = setup.services.sessions.open(setup.account, second_factor=True)
    page = _ask(setup, LOGIN)
    (code,) = _reset_codes(setup)
    assert code and code not in page  # never shown on the page
    done = setup.client.post(
        "/mot-de-passe-oublie/nouveau",
        data={
            "csrf_token": _token(page),
            "login": LOGIN,
            "code": code,
            "password": NEW_PASSWORD,
            "confirmation": NEW_PASSWORD,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/connexion"
    login = login_verifier(setup.services, account_service(setup.services, Clock()))
    assert login.verify_password_login(LOGIN, NEW_PASSWORD, "127.0.0.1") == setup.account
    stale = TestClient(setup.client.app, base_url="http://127.0.0.1")
    stale.cookies.set(SESSION_COOKIE, old_cookie)
    assert stale.get("/auth/me").status_code == 401  # every session of the account ended


def test_a_password_reset_ends_the_persons_apps_refresh_tokens(setup: Setup) -> None:
    """Who resets a password may fear their account was taken over: the refresh tokens of every
    app acting for the account stop with the new password (each app's revocation audited in the
    record's history); the apps get new tokens only from an authorisation signed in anew."""
    env = oauth_env(setup.services)
    client, _ = env.clients.register(
        "Suivi tension", ClientKind.PUBLIC, APP_SCOPES.split(), redirect_uris=[REDIRECT]
    )
    cookie, _ = env.sessions.open(setup.account, second_factor=True)
    env.http.cookies.set(SESSION_COOKIE, cookie)
    body = env.code_flow(client.client_id)
    page = _ask(setup, LOGIN)
    (code,) = _reset_codes(setup)
    done = setup.client.post(
        "/mot-de-passe-oublie/nouveau",
        data={
            "csrf_token": _token(page),
            "login": LOGIN,
            "code": code,
            "password": NEW_PASSWORD,
            "confirmation": NEW_PASSWORD,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    refreshed = env.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    in_history = audit_event.join(
        audit_event_patient, audit_event_patient.c.seq == audit_event.c.seq
    )
    with setup.services.engine.connect() as conn:
        bodies = [
            orjson.loads(r.body)
            for r in conn.execute(
                select(audit_event.c.body)
                .select_from(in_history)
                .where(audit_event_patient.c.patient_id == setup.patient_id)
            )
        ]
    revoked = [b for b in bodies if b["action"] == "token-revoke"]
    assert [b["client"] for b in revoked] == [client.client_id]


def _history_actions(setup: Setup) -> list[tuple[str, int]]:
    in_history = audit_event.join(
        audit_event_patient, audit_event_patient.c.seq == audit_event.c.seq
    )
    with setup.services.engine.connect() as conn:
        bodies = [
            orjson.loads(r.body)
            for r in conn.execute(
                select(audit_event.c.body)
                .select_from(in_history)
                .where(audit_event_patient.c.patient_id == setup.patient_id)
                .order_by(audit_event.c.seq)
            )
        ]
    return [(b["action"], b["outcome"]) for b in bodies]


def test_a_password_reset_and_a_refused_code_are_in_the_persons_history(setup: Setup) -> None:
    """A new password set with a reset code, and a wrong code given for the login, are events
    of the person's access history (ids only), as their sign-ins are."""
    page = _ask(setup, LOGIN)
    (code,) = _reset_codes(setup)
    form = {
        "csrf_token": _token(page),
        "login": LOGIN,
        "code": "AAAA-BBBB-CCCC-DDDD",
        "password": NEW_PASSWORD,
        "confirmation": NEW_PASSWORD,
    }
    assert setup.client.post("/mot-de-passe-oublie/nouveau", data=form).status_code == 400
    done = setup.client.post(
        "/mot-de-passe-oublie/nouveau", data={**form, "code": code}, follow_redirects=False
    )
    assert done.status_code == 303
    resets = [a for a in _history_actions(setup) if a[0] == "password-reset"]
    assert resets == [("password-reset", 400), ("password-reset", 200)]


def test_an_unknown_login_gets_the_same_page_and_no_code(setup: Setup) -> None:
    known, unknown = _ask(setup, LOGIN), _ask(setup, "personne@example.org")
    assert re.sub(r'value="[^"]*"', "", known) == re.sub(r'value="[^"]*"', "", unknown)
    assert len(_reset_codes(setup)) == 1


def test_a_wrong_reset_code_changes_nothing(setup: Setup) -> None:
    page = _ask(setup, LOGIN)
    refused = setup.client.post(
        "/mot-de-passe-oublie/nouveau",
        data={
            "csrf_token": _token(page),
            "login": LOGIN,
            "code": "AAAA-BBBB-CCCC-DDDD",
            "password": NEW_PASSWORD,
            "confirmation": NEW_PASSWORD,
        },
    )
    assert refused.status_code == 400 and 'id="f-code-error"' in refused.text
    login = login_verifier(setup.services, account_service(setup.services, Clock()))
    assert login.verify_password_login(LOGIN, PASSWORD, "127.0.0.1") == setup.account


def test_a_new_password_the_policy_refuses_gets_its_message_and_changes_nothing(
    setup: Setup,
) -> None:
    page = _ask(setup, LOGIN)
    (code,) = _reset_codes(setup)
    refused = setup.client.post(
        "/mot-de-passe-oublie/nouveau",
        data={
            "csrf_token": _token(page),
            "login": LOGIN,
            "code": code,
            "password": "aaaaaaaaaaaa",
            "confirmation": "aaaaaaaaaaaa",
        },
    )
    assert refused.status_code == 400 and 'id="f-password-error"' in refused.text
    assert "trop facile" in refused.text
    login = login_verifier(setup.services, account_service(setup.services, Clock()))
    assert login.verify_password_login(LOGIN, PASSWORD, "127.0.0.1") == setup.account
    retried = setup.client.post(  # the code was not spent: the person tries a better password
        "/mot-de-passe-oublie/nouveau",
        data={
            "csrf_token": _token(page),
            "login": LOGIN,
            "code": code,
            "password": NEW_PASSWORD,
            "confirmation": NEW_PASSWORD,
        },
        follow_redirects=False,
    )
    assert retried.status_code == 303


class _BothPastTheChecks(AccountService):
    """The real accounts, where each of two submissions of one reset code, once armed, waits
    after finding the login's account until the other has too: both are past that step before
    either changes anything, whatever the threads' timing."""

    def __init__(self, services: Services) -> None:
        super().__init__(
            services.engine, services.crypto, services.settings, passwords=FAST_PASSWORDS
        )
        self.barrier = threading.Barrier(2)
        self.armed = False

    def find_by_login(self, login: str) -> Account | None:
        found = super().find_by_login(login)
        if self.armed:
            self.barrier.wait(timeout=20)
        return found


def test_a_reset_code_is_spent_once_even_by_two_submissions_at_once(setup: Setup) -> None:
    page = _ask(setup, LOGIN)
    (code,) = _reset_codes(setup)
    accounts = _BothPastTheChecks(setup.services)
    services = replace(setup.services, accounts=accounts)
    other = "une autre phrase de passe tout aussi longue"
    forms = [
        {
            "csrf_token": _token(page),
            "login": LOGIN,
            "code": code,
            "password": password,
            "confirmation": password,
        }
        for password in (NEW_PASSWORD, other)
    ]
    accounts.armed = True
    with (
        TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c,
        ThreadPoolExecutor(2) as pool,
    ):
        c.cookies = setup.client.cookies
        answers = list(
            pool.map(
                lambda form: c.post(
                    "/mot-de-passe-oublie/nouveau", data=form, follow_redirects=False
                ),
                forms,
            )
        )
    assert sorted(a.status_code for a in answers) == [303, 400]
    login = login_verifier(setup.services, account_service(setup.services, Clock()))
    chosen = NEW_PASSWORD if answers[0].status_code == 303 else other
    assert login.verify_password_login(LOGIN, chosen, "127.0.0.1") == setup.account


def _ask_answer(setup: Setup, login: str) -> Any:
    token = _token(setup.client.get("/mot-de-passe-oublie").text)
    return setup.client.post("/mot-de-passe-oublie", data={"csrf_token": token, "login": login})


def test_forgotten_password_requests_are_throttled_per_login_and_address(setup: Setup) -> None:
    """Each request voids the previous code and notifies the person: past a few requests for one
    login from one address, the next waits (429, Retry-After, a message), for an unknown login
    exactly as for a known one; and one login asked from many addresses stops being sent codes
    for the day, except from an address where the owner completed a sign-in."""
    for login in (LOGIN, "personne@example.org"):
        answers = [_ask_answer(setup, login) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert int(answers[-1].headers["Retry-After"]) > 0
        assert "Trop de demandes" in answers[-1].text
    assert len(_reset_codes(setup)) == 3  # the refused request sent nothing
    known, unknown = _ask_answer(setup, LOGIN), _ask_answer(setup, "personne@example.org")
    assert (known.status_code, unknown.status_code) == (429, 429)
    assert re.sub(r'value="[^"]*"', "", known.text) == re.sub(r'value="[^"]*"', "", unknown.text)
    verifier = setup.services.login
    for n in range(7):  # 3 from the test client already: 10 a day from unfamiliar addresses
        verifier.check_reset_request(LOGIN, f"198.51.100.{n}")
    with pytest.raises(LoginThrottledError):
        verifier.check_reset_request(LOGIN, "198.51.100.200")
    uri = setup.services.accounts.enroll_totp(setup.account)
    verifier.verify_totp(setup.account, totp_code(uri, Clock(utc_now())), "203.0.113.9")
    verifier.check_reset_request(LOGIN, "203.0.113.9")  # the owner's own address is spared
