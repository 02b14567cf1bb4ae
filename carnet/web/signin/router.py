"""Sign in with a password, then a TOTP code, as plain HTML forms (POST-redirect-GET).

Same services, throttling and audit as POST /auth/login and /auth/totp (carnet/authn/api.py):
the password opens a short pending session; the code promotes it into a full session with a new
id. Wrong login and wrong password get the same message. ``suivant`` (a local path) is where the
person goes once signed in: the SMART authorize flow sends people here and gets them back.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from carnet.authn.api import SESSION_COOKIE
from carnet.authn.login import LoginVerifier
from carnet.authn.service import AccountError, AccountService, LoginThrottledError
from carnet.authn.sessions import SessionError, SessionService
from carnet.caller import Kind
from carnet.dependencies import AccountsDep, LoginDep, SessionsDep, SettingsDep
from carnet.settings import Settings
from carnet.web.caller import SIGN_IN_PATH, AnonymousForm, CsrfRefusedError, source_of
from carnet.web.flash import local_path, redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.security import SESSION_CSRF_COOKIE, set_session_cookies, usable_token
from carnet.web.templating import page_locale, render, translator

router = APIRouter(include_in_schema=False)

CODE_PATH = "/connexion/code"
SIGNED_IN = register_flash("signed-in", N_("Vous êtes connecté(e)."))
CODE_FIRST = register_flash(
    "password-first", N_("Saisissez d'abord votre identifiant et votre mot de passe."), "info"
)

WRONG_PASSWORD = N_("Identifiant ou mot de passe incorrect.")
WRONG_CODE = N_("Ce code n'est pas le bon, ou il a déjà servi. Attendez le suivant.")
NO_SECOND_FACTOR = N_(
    "Votre compte n'a pas encore de second facteur : terminez l'activation de votre espace."
)
THROTTLED = N_("Trop d'essais. Réessayez dans %(seconds)d secondes.")
REQUIRED = N_("Ce champ est obligatoire.")


def _next(request: Request, form: Any = None) -> str:
    raw = form.get("suivant") if form is not None else request.query_params.get("suivant")
    return local_path(raw if isinstance(raw, str) else None, "")


def refusal_message(request: Request, exc: AccountError) -> str:
    """What a refused password says (a wrong one, or too many tries): sign-in and activation."""
    gettext = translator(page_locale(request))
    if isinstance(exc, LoginThrottledError):
        return gettext(THROTTLED) % {"seconds": exc.retry_after}
    return gettext(WRONG_PASSWORD)


@router.get(SIGN_IN_PATH)
def sign_in_form(request: Request) -> Response:
    """The login and password form."""
    return render(request, "signin/password.html", {"suivant": _next(request), "errors": {}})


@router.post(SIGN_IN_PATH)
async def sign_in(
    request: Request,
    form: AnonymousForm,
    accounts: AccountsDep,
    verifier: LoginDep,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Response:
    """Check the password; on success a pending session and the code form."""
    login, password = str(form.get("login") or ""), str(form.get("password") or "")
    suivant = _next(request, form)
    gettext = translator(page_locale(request))
    errors = {name: gettext(REQUIRED) for name, value in (("login", login), ("password", password))}
    errors = {name: message for name, message in errors.items() if not form.get(name)}
    if errors:
        context = {"suivant": suivant, "errors": errors, "login": login}
        return render(request, "signin/password.html", context, status=400)
    return await run_in_threadpool(
        _sign_in, request, accounts, verifier, sessions, settings, login, password, suivant
    )


def _sign_in(
    request: Request,
    accounts: AccountService,
    verifier: LoginVerifier,
    sessions: SessionService,
    settings: Settings,
    login: str,
    password: str,
    suivant: str,
) -> Response:
    sessions.close(request.cookies.get(SESSION_COOKIE))  # a planted session is worth nothing
    try:
        account_id = verifier.verify_password_login(login, password, source_of(request))
    except AccountError as exc:
        status = 429 if isinstance(exc, LoginThrottledError) else 400
        context = {"suivant": suivant, "errors": {"password": refusal_message(request, exc)}}
        return render(request, "signin/password.html", {**context, "login": login}, status=status)
    account = accounts.account(account_id)
    if account is None or not account.has_totp:
        gettext = translator(page_locale(request))
        context = {"suivant": suivant, "errors": {"password": gettext(NO_SECOND_FACTOR)}}
        return render(request, "signin/password.html", {**context, "login": login}, status=403)
    cookie, csrf = sessions.open(account_id, second_factor=False)
    query = f"?{urlencode({'suivant': suivant})}" if suivant else ""
    response = redirect(CODE_PATH + query)
    set_session_cookies(response, settings, cookie, csrf)
    return response


@router.get(CODE_PATH)
def code_form(request: Request, sessions: SessionsDep) -> Response:
    """The second factor's form, for a pending session only."""
    if sessions.pending_account(request.cookies.get(SESSION_COOKIE)) is None:
        return redirect(SIGN_IN_PATH, CODE_FIRST)
    csrf = usable_token(request.cookies.get(SESSION_CSRF_COOKIE)) or ""
    context = {"suivant": _next(request), "errors": {}}
    return render(request, "signin/code.html", context, csrf_token=csrf)


@router.post(CODE_PATH)
async def check_code(
    request: Request,
    accounts: AccountsDep,
    verifier: LoginDep,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Response:
    """Check the code; on success a new full session, then where the person was going."""
    form = await request.form()
    return await run_in_threadpool(
        _check_code, request, accounts, verifier, sessions, settings, form
    )


def _check_code(
    request: Request,
    accounts: AccountService,
    verifier: LoginVerifier,
    sessions: SessionService,
    settings: Settings,
    form: Any,
) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    account_id = sessions.pending_account(cookie)
    if account_id is None:
        return redirect(SIGN_IN_PATH, CODE_FIRST)
    offered = form.get("csrf_token")
    if not sessions.check_csrf(cookie, offered if isinstance(offered, str) else None):
        raise CsrfRefusedError
    suivant = _next(request, form)
    csrf = usable_token(request.cookies.get(SESSION_CSRF_COOKIE)) or ""
    code = str(form.get("code") or "").replace(" ", "")
    gettext = translator(page_locale(request))
    try:
        if not code:
            raise AccountError("no code")
        verifier.verify_totp(account_id, code, source_of(request))
        new_cookie, new_csrf = sessions.promote(cookie)
    except AccountError as exc:
        message = (
            gettext(THROTTLED) % {"seconds": exc.retry_after}
            if isinstance(exc, LoginThrottledError)
            else gettext(REQUIRED if not code else WRONG_CODE)
        )
        status = 429 if isinstance(exc, LoginThrottledError) else 400
        context = {"suivant": suivant, "errors": {"code": message}}
        return render(request, "signin/code.html", context, csrf_token=csrf, status=status)
    except SessionError:
        return redirect(SIGN_IN_PATH, CODE_FIRST)
    principal = accounts.principal_for(account_id)
    landing = suivant or ("/espace" if principal.kind is Kind.PERSON else "/")
    response = redirect(landing, SIGNED_IN)
    set_session_cookies(response, settings, new_cookie, new_csrf)
    return response
