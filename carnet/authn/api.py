"""/auth: password login, second factor, logout and "who am I" for the portal (cookie sessions).

POST /auth/login (login + password, form or JSON) opens a short *pending* session; POST /auth/totp
(code) completes it into a full session with a new id; POST /auth/logout revokes it; GET /auth/me
says which account and record the session acts for (ids only). The session cookie
``carnet_session`` is HttpOnly, SameSite=Strict, Path=/, Secure when the issuer URL is https; the
CSRF token comes in the JSON body and as the readable cookie ``carnet_csrf``, and every unsafe
request made with the session cookie sends it back in ``X-CSRF-Token``. Errors are JSON
``{"error", "error_description"}`` with 400, 401, 403 or 429.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from carnet.authn.login import LoginVerifier
from carnet.authn.service import AccountError, AccountService, LoginThrottledError
from carnet.authn.sessions import SessionError, SessionService
from carnet.dependencies import AccountsDep, LoginDep, SessionsDep, SettingsDep
from carnet.settings import Settings

SESSION_COOKIE = "carnet_session"
CSRF_COOKIE = "carnet_csrf"
CSRF_HEADER = "X-CSRF-Token"
_MAX_BODY = 8192

router = APIRouter(prefix="/auth", tags=["auth"])


def error(status: int, code: str, description: str, **headers: str) -> JSONResponse:
    """An authentication error in the OAuth 2.0 shape."""
    return JSONResponse(
        {"error": code, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", **headers},
    )


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _cross_origin(request: Request, settings: Settings) -> bool:
    """A browser says where a form or script came from; refuse other sites (login CSRF)."""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    # The server's public addresses, never the Host header (a rebound name sends its own).
    allowed = {_origin(settings.public_base_url), _origin(settings.issuer_url)}
    return origin.lower() not in allowed


async def _fields(request: Request) -> dict[str, str] | None:
    """The string fields of a JSON object or a form body; None when the body is neither."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if int(request.headers.get("content-length") or 0) > _MAX_BODY:
        return None
    if content_type == "application/json":
        try:
            value: Any = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        return {k: v for k, v in value.items() if isinstance(v, str)}
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    return None


def _with_session(
    body: dict[str, Any], settings: Settings, cookie: str, csrf: str, status: int = 200
) -> JSONResponse:
    secure = settings.issuer_url.startswith("https")
    response = JSONResponse(
        {**body, "csrf_token": csrf}, status_code=status, headers={"Cache-Control": "no-store"}
    )
    response.set_cookie(
        SESSION_COOKIE, cookie, path="/", httponly=True, samesite="strict", secure=secure
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, path="/", httponly=False, samesite="strict", secure=secure
    )
    return response


def _clear(response: Response, settings: Settings) -> None:
    secure = settings.issuer_url.startswith("https")
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", httponly=http_only, samesite="strict", secure=secure)


def _refused(exc: AccountError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, LoginThrottledError):
        headers["Retry-After"] = str(exc.retry_after)
    return error(exc.status, exc.error, str(exc), **headers)


@router.post("/login")
async def login(
    request: Request,
    accounts: AccountsDep,
    login: LoginDep,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Response:
    """Check a login and password; answer with a pending session awaiting the second factor."""
    if _cross_origin(request, settings):
        return error(403, "invalid_request", "cross-origin login refused")
    fields = await _fields(request)
    if fields is None or not fields.get("login") or not fields.get("password"):
        return error(400, "invalid_request", "send login and password (form or JSON)")
    # Off the event loop: password hashing and database writes block.
    return await run_in_threadpool(_login, request, accounts, login, sessions, settings, fields)


def _login(
    request: Request,
    accounts: AccountService,
    login: LoginVerifier,
    sessions: SessionService,
    settings: Settings,
    fields: dict[str, str],
) -> Response:
    # Whatever session cookie came with the request (an attacker may have planted it) is dropped.
    sessions.close(request.cookies.get(SESSION_COOKIE))
    try:
        account_id = login.verify_password_login(
            fields["login"], fields["password"], _source(request)
        )
    except AccountError as exc:
        return _refused(exc)
    account = accounts.account(account_id)
    if account is None or not account.has_totp:  # said only to whoever knows the password
        return error(
            403, "second_factor_not_enrolled", "this account has no second factor enrolled yet"
        )
    cookie, csrf = sessions.open(account_id, second_factor=False)
    return _with_session({"status": "second_factor_required"}, settings, cookie, csrf)


@router.post("/totp")
async def totp(
    request: Request, login: LoginDep, sessions: SessionsDep, settings: SettingsDep
) -> Response:
    """Complete a pending session with a TOTP code: a new session id, the pending one revoked."""
    if _cross_origin(request, settings):
        return error(403, "invalid_request", "cross-origin request refused")
    fields = await _fields(request)
    # Off the event loop: session lookups and writes, code checks.
    return await run_in_threadpool(_totp, request, login, sessions, settings, fields)


def _totp(
    request: Request,
    login: LoginVerifier,
    sessions: SessionService,
    settings: Settings,
    fields: dict[str, str] | None,
) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    account_id = sessions.pending_account(cookie)
    if account_id is None:
        return error(401, "login_required", "log in with your password first")
    if not sessions.check_csrf(cookie, request.headers.get(CSRF_HEADER)):
        return error(403, "invalid_request", f"missing or wrong {CSRF_HEADER} header")
    if fields is None or not fields.get("code"):
        return error(400, "invalid_request", "send the code (form or JSON)")
    try:
        login.verify_totp(account_id, fields["code"], _source(request))
        new_cookie, csrf = sessions.promote(cookie)
    except AccountError as exc:
        return _refused(exc)
    except SessionError:
        return error(401, "login_required", "log in with your password first")
    body = {"status": "authenticated", "account": account_id}
    return _with_session(body, settings, new_cookie, csrf)


@router.post("/logout")
def logout(
    request: Request, login: LoginDep, sessions: SessionsDep, settings: SettingsDep
) -> Response:
    """Revoke the session (CSRF token required) and clear its cookies."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if sessions.session_account(cookie) is None:
        return error(401, "login_required", "no session")
    if not sessions.check_csrf(cookie, request.headers.get(CSRF_HEADER)):
        return error(403, "invalid_request", f"missing or wrong {CSRF_HEADER} header")
    account_id = sessions.close(cookie)
    if account_id is not None:
        login.logged_out(account_id, _source(request))
    response = JSONResponse({"status": "logged_out"}, headers={"Cache-Control": "no-store"})
    _clear(response, settings)
    return response


@router.get("/me")
def me(request: Request, accounts: AccountsDep, sessions: SessionsDep) -> Response:
    """The account, kind and record of the current session: ids only."""
    principal = sessions.principal(request.cookies.get(SESSION_COOKIE), accounts)
    if principal is None:
        return error(401, "login_required", "no valid session")
    body = {
        "account": principal.subject,
        "kind": principal.kind.value,
        "patient": principal.patient_id,
        "rpps": principal.rpps,
        "profession": principal.profession,
    }
    return JSONResponse(
        {k: v for k, v in body.items() if v is not None}, headers={"Cache-Control": "no-store"}
    )
