"""The /auth flow over HTTP: password, second factor, rotation, CSRF, logout, lockout; and what the
data directory holds afterwards (no login, password, TOTP seed or session id in clear)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select

from carnet.app import Services, build_services
from carnet.audit.models import audit_event
from carnet.authn.api import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from tests.conftest import make_settings
from tests.spec.helpers import patient
from tests.support.authn import (
    PASSWORD,
    Clock,
    account_service,
    login_app,
    session_service,
    totp_code,
)
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke

BASE = "http://127.0.0.1"
LOGIN = "eloise.quintrandeau@exemple-sante.fr"


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
def web(
    services: Services, accounts: AccountService, sessions: SessionService
) -> Iterator[TestClient]:
    with TestClient(login_app(services, accounts, sessions), base_url=BASE) as client:
        yield client


@pytest.fixture
def person(accounts: AccountService) -> tuple[str, str]:
    account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
    return account_id, accounts.enroll_totp(account_id)


def _cookie_headers(response: Response) -> dict[str, str]:
    out = {}
    for header in response.headers.get_list("set-cookie"):
        out[header.split("=", 1)[0]] = header
    return out


def _login(web: TestClient, login: str = LOGIN, password: str = PASSWORD) -> Response:
    return web.post("/auth/login", json={"login": login, "password": password})


def _full_login(web: TestClient, uri: str, clock: Clock) -> str:
    first = _login(web)
    assert first.status_code == 200, first.text
    done = web.post(
        "/auth/totp",
        json={"code": totp_code(uri, clock)},
        headers={CSRF_HEADER: first.json()["csrf_token"]},
    )
    assert done.status_code == 200, done.text
    return str(done.json()["csrf_token"])


def test_password_then_totp_gives_a_new_session(
    web: TestClient, person: tuple[str, str], clock: Clock, services: Services
) -> None:
    account_id, uri = person
    first = _login(web)
    assert first.status_code == 200
    assert first.json()["status"] == "second_factor_required"
    assert first.headers["cache-control"] == "no-store"
    cookies = _cookie_headers(first)
    session_header = cookies[SESSION_COOKIE].lower()
    assert "httponly" in session_header and "samesite=strict" in session_header
    assert "path=/" in session_header and "secure" not in session_header  # http issuer
    assert "httponly" not in cookies[CSRF_COOKIE].lower()
    pending = web.cookies[SESSION_COOKIE]
    assert first.json()["csrf_token"] == web.cookies[CSRF_COOKIE]

    assert web.get("/auth/me").status_code == 401  # the password alone opens nothing

    refused = web.post("/auth/totp", json={"code": totp_code(uri, clock)})
    assert refused.status_code == 403  # no CSRF header
    done = web.post(
        "/auth/totp",
        data={"code": totp_code(uri, clock)},  # forms work too
        headers={CSRF_HEADER: first.json()["csrf_token"]},
    )
    assert done.status_code == 200, done.text
    assert done.json()["account"] == account_id
    full = web.cookies[SESSION_COOKIE]
    assert full != pending
    me = web.get("/auth/me")
    assert me.json() == {"account": account_id, "kind": "person", "patient": "pat-1"}

    # The pre-second-factor id is dead: neither usable nor promotable again.
    stale = TestClient(web.app, base_url=BASE, cookies={SESSION_COOKIE: pending})
    assert stale.get("/auth/me").status_code == 401
    again = stale.post(
        "/auth/totp",
        json={"code": totp_code(uri, clock, 1)},
        headers={CSRF_HEADER: first.json()["csrf_token"]},
    )
    assert again.status_code == 401

    with services.engine.connect() as conn:
        bodies = [orjson.loads(b) for b in conn.execute(select(audit_event.c.body)).scalars()]
    assert [(e["action"], e["rule"]) for e in bodies] == [
        ("login", "authn:password"),
        ("login", "authn:totp"),
    ]


def test_form_login_and_bad_requests(web: TestClient, person: tuple[str, str]) -> None:
    assert web.post("/auth/login", data={"login": LOGIN, "password": PASSWORD}).status_code == 200
    for bad in (
        web.post("/auth/login", json={"login": LOGIN}),
        web.post("/auth/login", json=[LOGIN, PASSWORD]),
        web.post("/auth/login", content=b"{not json", headers={"content-type": "application/json"}),
        web.post("/auth/login", content=b"login=x", headers={"content-type": "text/plain"}),
    ):
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_request"


def test_an_account_without_second_factor_gets_no_session(
    web: TestClient, accounts: AccountService
) -> None:
    accounts.create_operator("ops", PASSWORD)
    answer = _login(web, login="ops")
    assert answer.status_code == 403
    assert answer.json()["error"] == "second_factor_not_enrolled"
    assert SESSION_COOKIE not in _cookie_headers(answer)


def test_wrong_password_and_unknown_login_answer_alike(
    web: TestClient, person: tuple[str, str]
) -> None:
    wrong = _login(web, password="not the right one")
    unknown = _login(web, login="personne@exemple.fr")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "invalid_grant"
    assert SESSION_COOKIE not in _cookie_headers(wrong)


def test_failed_logins_answer_429_with_a_growing_retry_after(
    web: TestClient, person: tuple[str, str], services: Services, clock: Clock
) -> None:
    for _ in range(services.settings.login_max_failures):
        assert _login(web, password="guessing guessing").status_code == 401
    waits = []
    for _ in range(3):
        throttled = _login(web)
        assert throttled.status_code == 429
        assert throttled.json()["error"] == "too_many_attempts"
        waits.append(int(throttled.headers["retry-after"]))
        clock.advance(seconds=waits[-1])
        assert _login(web, password="guessing guessing").status_code == 401
    assert waits[1] == 2 * waits[0] and waits[2] == 2 * waits[1]
    clock.advance(seconds=int(_login(web).headers["retry-after"]))
    assert _login(web).status_code == 200


def test_the_owner_signs_in_from_their_address_after_an_attackers_failures(
    web: TestClient, person: tuple[str, str], services: Services, clock: Clock
) -> None:
    attacker = TestClient(web.app, base_url=BASE, client=("203.0.113.9", 40000))
    for _ in range(services.settings.login_max_failures):
        assert _login(attacker, password="guessing guessing").status_code == 401
    assert _login(attacker).status_code == 429  # the right password, from the attacker's address
    owner = TestClient(web.app, base_url=BASE, client=("198.51.100.7", 40000))
    assert _login(owner).status_code == 200


def test_a_planted_session_cookie_is_not_adopted(
    web: TestClient, person: tuple[str, str], clock: Clock
) -> None:
    _, uri = person
    web.cookies.set(SESSION_COOKIE, "chosen-by-the-attacker", domain="127.0.0.1")
    first = _login(web)
    assert web.cookies[SESSION_COOKIE] != "chosen-by-the-attacker"
    web.post(
        "/auth/totp",
        json={"code": totp_code(uri, clock)},
        headers={CSRF_HEADER: first.json()["csrf_token"]},
    )
    attacker = TestClient(
        web.app, base_url=BASE, cookies={SESSION_COOKIE: "chosen-by-the-attacker"}
    )
    assert attacker.get("/auth/me").status_code == 401


def test_totp_needs_a_pending_session_and_the_right_code(
    web: TestClient, person: tuple[str, str], clock: Clock
) -> None:
    _, uri = person
    assert web.post("/auth/totp", json={"code": "123456"}).status_code == 401
    first = _login(web)
    csrf = {CSRF_HEADER: first.json()["csrf_token"]}
    right = totp_code(uri, clock)
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    bad = web.post("/auth/totp", json={"code": wrong}, headers=csrf)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_grant"
    assert web.post("/auth/totp", json={}, headers=csrf).status_code == 400
    clock.advance(minutes=6)  # the pending session lapsed
    assert web.post("/auth/totp", json={"code": right}, headers=csrf).status_code == 401


def test_logout_needs_the_csrf_token_and_revokes(
    web: TestClient, person: tuple[str, str], clock: Clock, services: Services
) -> None:
    account_id, uri = person
    csrf = _full_login(web, uri, clock)
    cookie = web.cookies[SESSION_COOKIE]
    assert web.post("/auth/logout").status_code == 403
    assert web.post("/auth/logout", headers={CSRF_HEADER: "forged"}).status_code == 403
    assert web.get("/auth/me").status_code == 200  # refused logouts changed nothing
    out = web.post("/auth/logout", headers={CSRF_HEADER: csrf})
    assert out.status_code == 200
    assert 'carnet_session=""' in out.headers.get_list("set-cookie")[0]
    replay = TestClient(web.app, base_url=BASE, cookies={SESSION_COOKIE: cookie})
    assert replay.get("/auth/me").status_code == 401
    assert replay.post("/auth/logout", headers={CSRF_HEADER: csrf}).status_code == 401
    with services.engine.connect() as conn:
        bodies = [orjson.loads(b) for b in conn.execute(select(audit_event.c.body)).scalars()]
    assert bodies[-1]["action"] == "logout" and bodies[-1]["actor"] == account_id


def test_expired_session_is_refused(
    web: TestClient, person: tuple[str, str], clock: Clock, services: Services
) -> None:
    _, uri = person
    _full_login(web, uri, clock)
    clock.advance(minutes=services.settings.session_minutes - 1)
    assert web.get("/auth/me").status_code == 200  # used: slides
    clock.advance(minutes=services.settings.session_minutes + 1)
    assert web.get("/auth/me").status_code == 401


def test_cross_origin_login_is_refused(web: TestClient, person: tuple[str, str]) -> None:
    evil = web.post(
        "/auth/login",
        json={"login": LOGIN, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert evil.status_code == 403
    same = web.post(
        "/auth/login", json={"login": LOGIN, "password": PASSWORD}, headers={"Origin": BASE}
    )
    assert same.status_code == 200


def test_login_origin_check_ignores_a_forged_host(web: TestClient, person: tuple[str, str]) -> None:
    """DNS rebinding: a page on evil.example resolving to this server sends Host and Origin of
    evil.example; the allowed origin is the server's public address, never the Host header."""
    rebound = web.post(
        "/auth/login",
        json={"login": LOGIN, "password": PASSWORD},
        headers={"Origin": "http://evil.example", "Host": "evil.example"},
    )
    assert rebound.status_code == 403


def test_cookies_are_secure_behind_https(tmp_path: Path, clock: Clock) -> None:
    settings = make_settings(tmp_path / "data").with_(issuer_url="https://carnet.example")
    services = build_services(settings)
    try:
        accounts = account_service(services, clock)
        accounts.enroll_totp(accounts.create_person(LOGIN, PASSWORD, "pat-1"))
        app = login_app(services, accounts, session_service(services, clock))
        with TestClient(app, base_url="https://carnet.example") as web:
            cookies = _cookie_headers(_login(web))
        assert "secure" in cookies[SESSION_COOKIE].lower()
        assert "secure" in cookies[CSRF_COOKIE].lower()
    finally:
        services.close()


# -- what is left on disk -----------------------------------------------------------------------


def _forms(text: str) -> set[bytes]:
    out: set[bytes] = set()
    for form in {text, text.lower(), text.upper()}:
        out |= {form.encode(), form.encode("utf-16-le"), form.encode("utf-16-be")}
    return out


def _scan(root: Path, needles: dict[str, set[bytes]]) -> list[str]:
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits += [
            f"{path.name}: {label}"
            for label, forms in needles.items()
            if any(f in data for f in forms)
        ]
    return hits


def test_no_login_password_seed_or_session_id_in_the_data_directory(
    tmp_path: Path, clock: Clock
) -> None:
    settings = make_settings(tmp_path / "data")
    services = build_services(settings)
    seen: dict[str, Any] = {}
    try:
        accounts = account_service(services, clock)
        account_id = accounts.create_person(LOGIN, PASSWORD, "pat-1")
        uri = accounts.enroll_totp(account_id)
        app = login_app(services, accounts, session_service(services, clock))
        with TestClient(app, base_url=BASE) as web:
            _login(web, password="a wrong password here")
            _login(web, login="inconnu.quelconque@exemple-sante.fr")
            csrf = _full_login(web, uri, clock)
            seen["session"] = web.cookies[SESSION_COOKIE]
            seen["csrf"] = csrf
    finally:
        services.close()
    needles = {
        "login": _forms(LOGIN) | _forms(LOGIN.split("@")[0]),
        "unknown login": _forms("inconnu.quelconque"),
        "password": _forms(PASSWORD) | _forms("a wrong password here"),
        "totp seed": _forms(uri.split("secret=")[1].split("&")[0]),
        "session id": _forms(seen["session"]),
        "csrf token": _forms(seen["csrf"]),
    }
    control = {"control": _forms(account_id)}  # ids are stored in clear: the scan finds them
    assert _scan(settings.data_dir, control)
    assert _scan(settings.data_dir, needles) == []


def test_cli_creates_accounts_with_a_second_factor(tmp_path: Path) -> None:
    env = {"CARNET_DATA_DIR": str(tmp_path / "data"), "CARNET_DATABASE_URL": "", "COLUMNS": "300"}
    password = f"{PASSWORD}\n{PASSWORD}\n"
    pro = invoke(
        [
            "accounts",
            "add-professional",
            "dr.who",
            "--rpps",
            "10001234567",
            "--profession",
            "physician",
        ],
        input=password,
        env=env,
        catch_exceptions=False,
    )
    assert pro.exit_code == 0, pro.output
    assert "professional:physician" in pro.output and "otpauth://totp/Carnet:" in pro.output
    assert "dr.who" not in pro.output.split("created")[1]  # ids, not the login
    oidc = invoke(
        [
            "accounts",
            "add-professional",
            "nurse",
            "--rpps",
            "10007654321",
            "--profession",
            "nurse",
            "--oidc-only",
        ],
        env=env,
        catch_exceptions=False,
    )
    assert oidc.exit_code == 0 and "otpauth" not in oidc.output
    ops = invoke(
        ["accounts", "add-operator", "ops"],
        input=password,
        env=env,
        catch_exceptions=False,
    )
    assert ops.exit_code == 0 and "(operator)" in ops.output
    weak = invoke(["accounts", "add-operator", "ops2"], input="short\nshort\n", env=env)
    assert weak.exit_code == 1 and "at least 12" in weak.output
    missing = invoke(
        ["accounts", "add-person", "jeanne", "--patient", "no-such-patient"],
        input=password,
        env=env,
    )
    assert missing.exit_code == 1 and "no Patient/no-such-patient" in missing.output


def test_a_space_has_one_person_account_even_when_added_from_the_cli(
    sqlite_services: Services,
) -> None:
    """One person account per space: `carnet accounts add-person` for a Patient whose person
    already has an account is refused in one line with a non-zero exit, and adds nothing (the
    rule is the accounts service's, not the activation pages')."""
    services = sqlite_services
    pid = services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    env = {
        "CARNET_DATA_DIR": str(services.settings.data_dir),
        "CARNET_DATABASE_URL": "",
        "CARNET_PASSWORD_HASH_PROFILE": "test-only-weak",
        "COLUMNS": "300",
    }
    password = f"{PASSWORD}\n{PASSWORD}\n"
    first = invoke(
        ["accounts", "add-person", "un@example.org", "--patient", pid, "--no-totp"],
        input=password,
        env=env,
    )
    assert first.exit_code == 0, first.output
    second = invoke(
        ["accounts", "add-person", "deux@example.org", "--patient", pid, "--no-totp"],
        input=password,
        env=env,
    )
    assert second.exit_code == 1, second.output
    assert f"Patient/{pid} already has a person account" in second.output
    assert services.accounts.find_by_login("deux@example.org") is None
