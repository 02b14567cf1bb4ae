"""Activation codes through the portal's pages without a browser (the journeys, in Chromium, are
test_activation_journey.py): a code opens a space that has no account yet; a space whose person
already has an account is signed in to, never given a second account by a code; a password the
policy refuses is a message to the person, and the code stays theirs to use."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import orjson
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carnet.app import Services, create_app
from carnet.audit.models import audit_event, audit_event_patient
from carnet.authn.models import access_account
from carnet.authn.service import AccountService, NewAccount
from carnet.db.engine import reading
from carnet.fhir.errors import conflict
from carnet.record.activation import ACTIVATION
from carnet.record.notifications import ACTIVATION_CODE
from tests.spec.helpers import patient
from tests.support.authn import FAST_PASSWORDS, PASSWORD, Clock, account_service
from tests.support.caller import AS_LOCAL_OPERATOR


@dataclass
class Setup:
    client: TestClient
    services: Services
    patient_id: str


@pytest.fixture
def setup(sqlite_services: Services) -> Iterator[Setup]:
    services = sqlite_services
    pid = services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    services.record.open_space(pid, ctx=AS_LOCAL_OPERATOR)
    with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c:
        yield Setup(c, services, pid)


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _account_form(
    page: str, login: str, password: str = PASSWORD, confirmation: str | None = None
) -> dict[str, str]:
    """Step 2's fields (the account form of ``page``): a login and a password, twice."""
    return {
        "csrf_token": _field(page, "csrf_token"),
        "ticket": _field(page, "ticket"),
        "login": login,
        "password": password,
        "confirmation": password if confirmation is None else confirmation,
    }


def _secret(page: str) -> str:
    found = re.search(r'<code class="secret">([^<]+)</code>', page)
    assert found, page
    return found.group(1).replace(" ", "")


def _code(setup: Setup) -> str:
    setup.services.record.activation.issue(setup.patient_id, ctx=AS_LOCAL_OPERATOR)
    codes = [
        n.secret or ""
        for n in setup.services.record.pending_notifications()
        if n.kind == ACTIVATION_CODE and n.patient_id == setup.patient_id
    ]
    return codes[-1]


def _accounts_of(setup: Setup) -> int:
    with reading(setup.services.engine) as conn:
        counted = conn.execute(
            select(func.count())
            .select_from(access_account)
            .where(access_account.c.patient_id == setup.patient_id)
        ).scalar_one()
    return int(counted)


def test_an_activation_code_never_gives_a_space_with_an_account_a_second_one(
    setup: Setup,
) -> None:
    client = setup.client
    code = _code(setup)
    page = client.get("/activation").text
    step = client.post("/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code})
    assert step.status_code == 200, step.text
    # Meanwhile the person's account is made another way (at the desk, `carnet accounts
    # add-person`): whoever holds the code must not get a second way into the record.
    account_service(setup.services, Clock()).create_person(
        "desk@example.org", PASSWORD, setup.patient_id
    )
    made = client.post(
        "/activation/compte",
        data=_account_form(step.text, "second@example.org"),
    )
    assert made.status_code == 400
    assert setup.services.accounts.find_by_login("second@example.org") is None
    assert _accounts_of(setup) == 1
    # A code issued later for the same space opens no account form either: sign in instead.
    again = _code(setup)
    page = client.get("/activation").text
    refused = client.post(
        "/activation", data={"csrf_token": _field(page, "csrf_token"), "code": again}
    )
    assert refused.status_code == 400
    assert "déjà un compte" in refused.text
    assert 'name="ticket"' not in refused.text


def test_a_password_the_policy_refuses_gets_its_message_and_spends_no_code(
    setup: Setup,
) -> None:
    client = setup.client
    code = _code(setup)
    page = client.get("/activation").text
    step = client.post("/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code})
    form = _account_form(step.text, "camille@example.org", "aaaaaaaaaaaa")
    refused = client.post("/activation/compte", data=form)
    assert refused.status_code == 400
    assert "trop facile" in refused.text
    assert _accounts_of(setup) == 0
    made = client.post(
        "/activation/compte", data={**form, "password": PASSWORD, "confirmation": PASSWORD}
    )
    assert made.status_code == 200 and _accounts_of(setup) == 1


class _BothPastTheChecks(AccountService):
    """The real accounts, where each of two submissions waits, once its code is checked and its
    account made ready (``new_person``, just before the code is spent and the account
    inserted), until the other is there too: both are then past every check before either
    account exists, whatever the threads' timing."""

    def __init__(self, services: Services, barrier: threading.Barrier) -> None:
        super().__init__(
            services.engine, services.crypto, services.settings, passwords=FAST_PASSWORDS
        )
        self.barrier = barrier
        self.armed = False  # set once both have their step-2 form

    def new_person(self, login: str, password: str) -> NewAccount:
        made = super().new_person(login, password)
        if self.armed:
            self.barrier.wait(timeout=20)
        return made


def test_an_activation_code_is_spent_once_even_by_two_submissions_at_once(
    setup: Setup,
) -> None:
    code = _code(setup)
    accounts = _BothPastTheChecks(setup.services, threading.Barrier(2))
    services = replace(setup.services, accounts=accounts)
    app = create_app(services.settings, services)
    with (
        TestClient(app, base_url="http://127.0.0.1") as one,
        TestClient(app, base_url="http://127.0.0.1") as two,
    ):
        forms = []
        for client, login in ((one, "un@example.org"), (two, "deux@example.org")):
            page = client.get("/activation").text
            step = client.post(
                "/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code}
            )
            assert step.status_code == 200, step.text
            forms.append(_account_form(step.text, login))
        accounts.armed = True
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda pair: pair[0].post("/activation/compte", data=pair[1]),
                    zip((one, two), forms, strict=True),
                )
            )
    assert sorted(a.status_code for a in answers) == [200, 400]
    assert _accounts_of(setup) == 1


def test_a_login_already_taken_gets_its_message_and_spends_no_code(setup: Setup) -> None:
    account_service(setup.services, Clock()).create_person(
        "pris@example.org",
        PASSWORD,
        setup.services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id,
    )
    client = setup.client
    code = _code(setup)
    page = client.get("/activation").text
    step = client.post("/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code})
    form = _account_form(step.text, "Pris@Example.org")
    refused = client.post("/activation/compte", data=form)
    assert refused.status_code == 400 and "déjà pris" in refused.text
    assert _accounts_of(setup) == 0
    made = client.post("/activation/compte", data={**form, "login": "libre@example.org"})
    assert made.status_code == 200 and _accounts_of(setup) == 1


def test_an_objection_that_fails_spends_no_code(setup: Setup) -> None:
    """The code is claimed in the objection's transaction: an objection refused (the space was
    closed meanwhile) answers the code step again and leaves the code usable, as a grant that
    fails leaves it for the account's creation."""
    client = setup.client
    code = _code(setup)
    page = client.get("/activation").text
    step = client.post("/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code})
    assert step.status_code == 200, step.text
    setup.services.record.close(setup.patient_id, reason="operator", ctx=AS_LOCAL_OPERATOR)
    refused = client.post(
        "/activation/opposition",
        data={"csrf_token": _field(step.text, "csrf_token"), "ticket": _field(step.text, "ticket")},
    )
    assert refused.status_code == 400
    # A closed space's code opens nothing (test_an_activation_code_opens_no_closed_space); once
    # the space is open again, the code is still theirs: the failed objection did not spend it.
    record = setup.services.record
    record.reopen(setup.patient_id, ctx=AS_LOCAL_OPERATOR)
    assert record.activation.check(code, ACTIVATION) is not None
    # An objection of an open space that fails in its transaction (here the closure's end of the
    # apps' access refuses) keeps the code too: the claim rolls back with it.
    step = client.post("/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code})
    hook = record.on_close

    def refusing(*_args: object) -> None:
        raise conflict("the apps' access could not be ended")

    record.on_close = refusing
    try:
        refused = client.post(
            "/activation/opposition",
            data={
                "csrf_token": _field(step.text, "csrf_token"),
                "ticket": _field(step.text, "ticket"),
            },
        )
    finally:
        record.on_close = hook
    assert refused.status_code == 400
    assert record.activation.check(code, ACTIVATION) is not None
    space = record.space(setup.patient_id)
    assert space is not None and space.state == "open"


def _events(setup: Setup, *, of_patient: bool) -> list[tuple[str, int, str]]:
    """(action, outcome, actor) of the activation events, the person's history's or all."""
    query = select(audit_event.c.body).order_by(audit_event.c.seq)
    if of_patient:
        query = query.select_from(
            audit_event.join(audit_event_patient, audit_event_patient.c.seq == audit_event.c.seq)
        ).where(audit_event_patient.c.patient_id == setup.patient_id)
    with setup.services.engine.connect() as conn:
        bodies = [orjson.loads(r.body) for r in conn.execute(query)]
    return [(b["action"], b["outcome"], b["actor"]) for b in bodies if b["action"] == "activation"]


def test_an_activation_and_a_refused_code_are_in_the_persons_history(setup: Setup) -> None:
    """Every access, allowed or denied, is audited: the account created with a code is an event
    of the person's history (actor: the new account), as is a code of their space refused
    because the space has its account; a code that opens nothing is an event too (whose space
    it was meant for is unknown)."""
    client = setup.client
    page = client.get("/activation").text
    wrong = client.post(
        "/activation",
        data={"csrf_token": _field(page, "csrf_token"), "code": "AAAA-BBBB-CCCC-DDDD"},
    )
    assert wrong.status_code == 400
    assert [(a, o) for a, o, _who in _events(setup, of_patient=False)] == [("activation", 400)]
    code = _code(setup)
    step = client.post("/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code})
    made = client.post(
        "/activation/compte",
        data=_account_form(step.text, "camille@example.org"),
    )
    assert made.status_code == 200
    account = setup.services.accounts.find_by_login("camille@example.org")
    assert account is not None
    confirmed = client.post(
        "/activation/verification",
        data={
            "csrf_token": _field(made.text, "csrf_token"),
            "ticket": _field(made.text, "ticket"),
            "code": pyotp.TOTP(_secret(made.text)).now(),
        },
        follow_redirects=False,
    )
    assert confirmed.status_code == 303
    again = client.post(
        "/activation", data={"csrf_token": _field(page, "csrf_token"), "code": _code(setup)}
    )
    assert again.status_code == 400 and "déjà un compte" in again.text
    history = _events(setup, of_patient=True)
    assert [(a, o) for a, o, _who in history] == [("activation", 200), ("activation", 409)]
    assert history[0][2] == account.account_id


def test_a_half_finished_activation_is_finished_with_a_new_code_and_the_password(
    setup: Setup,
) -> None:
    """Someone who left at the QR-code step (an account, a second factor never confirmed, the
    code spent) is not locked out: a new code for the space, with the account's own login and
    password, enrols that same account's second factor again, and nothing else (no second
    account; a wrong password spends no code; once a second factor is confirmed, a code opens
    nothing)."""
    client = setup.client
    code = _code(setup)
    page = client.get("/activation").text
    step = client.post("/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code})
    left = client.post(
        "/activation/compte",
        data=_account_form(step.text, "camille@example.org"),
    )
    assert left.status_code == 200  # the QR code, never scanned
    account = setup.services.accounts.find_by_login("camille@example.org")
    assert account is not None
    code = _code(setup)
    step = client.post("/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code})
    assert step.status_code == 200, step.text
    assert 'action="/activation/reprise"' in step.text
    form = {
        "csrf_token": _field(step.text, "csrf_token"),
        "ticket": _field(step.text, "ticket"),
        "login": "camille@example.org",
        "password": PASSWORD + "x",
    }
    wrong = client.post("/activation/reprise", data=form)
    assert wrong.status_code == 400
    assert setup.services.record.activation.check(code, ACTIVATION) is not None
    enrol = client.post("/activation/reprise", data={**form, "password": PASSWORD})
    assert enrol.status_code == 200, enrol.text
    assert setup.services.record.activation.check(code, ACTIVATION) is None  # spent
    done = client.post(
        "/activation/verification",
        data={
            "csrf_token": _field(enrol.text, "csrf_token"),
            "ticket": _field(enrol.text, "ticket"),
            "code": pyotp.TOTP(_secret(enrol.text)).now(),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/espace")
    assert _accounts_of(setup) == 1
    again = client.post(
        "/activation", data={"csrf_token": _field(page, "csrf_token"), "code": _code(setup)}
    )
    assert again.status_code == 400 and "déjà un compte" in again.text


def test_an_activation_code_opens_no_closed_space(setup: Setup) -> None:
    """A code sent before the space was closed (here on a death) gives no way into the record:
    the code step refuses it like a code that opens nothing, and a form opened before the closure
    makes no account."""
    client = setup.client
    code = _code(setup)
    page = client.get("/activation").text
    step = client.post("/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code})
    assert step.status_code == 200, step.text
    setup.services.record.close(setup.patient_id, reason="death", ctx=AS_LOCAL_OPERATOR)
    made = client.post(
        "/activation/compte",
        data=_account_form(step.text, "camille@example.org"),
    )
    assert made.status_code == 400
    assert _accounts_of(setup) == 0
    refused = client.post(
        "/activation", data={"csrf_token": _field(page, "csrf_token"), "code": code}
    )
    assert refused.status_code == 400 and 'name="ticket"' not in refused.text
