"""SMART on FHIR / OAuth 2.0 endpoints: discovery, authorise (the grant screen), token, revoke,
the server's JWKS, and a person's list of authorised apps. Thin: parse, call OAuthService, render.

Services come from carnet.dependencies: OAuthService, Tickets, SessionService, AccountService.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from carnet.authn import pages
from carnet.authn.api import SESSION_COOKIE
from carnet.authn.client_auth import OAuthError
from carnet.authn.digests import digest
from carnet.authn.oauth import OAuthService
from carnet.authn.service import AccountService
from carnet.authn.sessions import SessionService
from carnet.authn.smart import AuthorizeError, openid_configuration, smart_configuration
from carnet.authn.tickets import Tickets
from carnet.caller import Kind, Principal
from carnet.crypto.tokens import TokenError
from carnet.dependencies import AccountsDep, OAuthDep, SessionsDep, SettingsDep, TicketsDep

router = APIRouter(tags=["oauth"])
_MAX_FORM = 16384
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _user(
    request: Request, sessions: SessionService, accounts: AccountService
) -> tuple[Principal | None, str]:
    """The portal session's principal and the session's binding (digest of its cookie)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    principal = sessions.principal(cookie, accounts) if cookie else None
    return principal, digest(cookie or "")


def _ticket_claims(
    tickets: Tickets,
    purpose: str,
    binding: str,
    user: Principal,
    form: dict[str, list[str]],
    retry_hint: str,
) -> dict[str, Any] | Response:
    """The claims of the form's ticket for ``purpose``, issued to ``user`` in this session; or the
    error page to answer with (expired: 400 with ``retry_hint``; someone else's: 403)."""
    try:
        claims = tickets.check(purpose, binding, form.get("ticket", [""])[0])
    except TokenError:
        return pages.error_page("Demande expirée", retry_hint, 400)
    if claims.get("sub") != user.subject:
        return pages.error_page("Demande invalide", "cette demande n'est pas la vôtre", 403)
    return claims


async def _client_form(request: Request) -> dict[str, str]:
    """The token and revocation endpoints' form, one value a field; OAuthError if it is not a
    form-encoded body (too large, or holding a NUL)."""
    form = await _form(request)
    if form is None:
        raise OAuthError("invalid_request", "a form-encoded body is expected")
    return _single(form)


async def _form(request: Request) -> dict[str, list[str]] | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    if int(request.headers.get("content-length") or 0) > _MAX_FORM:
        return None
    form = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            if "\x00" in key or "\x00" in value:
                return None  # matches no client or token, and PostgreSQL refuses it in text
            out.setdefault(key, []).append(value)
    return out


def _single(form: dict[str, list[str]]) -> dict[str, str]:
    """Form fields each given once (RFC 6749 3.1: a repeated parameter is an error)."""
    if any(len(v) != 1 for v in form.values()):
        raise OAuthError("invalid_request", "a parameter is repeated")
    return {k: v[0] for k, v in form.items()}


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    return unquote(client_id), unquote(secret)  # RFC 6749 2.3.1: form-encoded first


# A grant-screen or grants-page answer, run off the event loop (database writes, hashing).
FormHandler = Callable[
    [Request, OAuthService, Tickets, SessionService, AccountService, dict[str, list[str]]],
    Response,
]


async def _answer_form(
    request: Request,
    handler: FormHandler,
    oauth: OAuthService,
    tickets: Tickets,
    sessions: SessionService,
    accounts: AccountService,
) -> Response:
    """Parse the posted form, then let ``handler`` answer it off the event loop."""
    form = await _form(request)
    if form is None:
        return pages.error_page("Demande invalide", "formulaire attendu")
    return await run_in_threadpool(handler, request, oauth, tickets, sessions, accounts, form)


def _authorize_refused(exc: AuthorizeError) -> Response:
    """Back to the app when its redirect URI is known, else an error page."""
    if exc.redirect:
        return RedirectResponse(exc.redirect, status_code=303)
    return pages.error_page("Demande d'autorisation refusée", exc.description)


def _oauth_error(exc: OAuthError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="carnet"'
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


@router.get("/.well-known/smart-configuration")
@router.get("/fhir/.well-known/smart-configuration")
def smart_config(settings: SettingsDep) -> JSONResponse:
    """SMART App Launch discovery."""
    return JSONResponse(smart_configuration(settings))


@router.get("/.well-known/openid-configuration")
def openid_config(settings: SettingsDep) -> JSONResponse:
    """OpenID Connect discovery (the issuer is the server's root, not the FHIR base)."""
    return JSONResponse(openid_configuration(settings))


@router.get("/oauth/jwks")
def jwks(oauth: OAuthDep) -> JSONResponse:
    """The public keys that verify this server's access and ID tokens."""
    return JSONResponse(oauth.signer.public_jwks())


@router.get("/oauth/authorize")
def authorize(
    request: Request,
    oauth: OAuthDep,
    tickets: TicketsDep,
    sessions: SessionsDep,
    accounts: AccountsDep,
) -> Response:
    """Check the request; ask a logged-in user to approve it (the grant screen)."""
    params = dict(request.query_params)
    try:
        checked = oauth.authorization.check_request(params)
    except AuthorizeError as exc:
        return _authorize_refused(exc)
    user, binding = _user(request, sessions, accounts)
    if user is None:
        here = f"/oauth/authorize?{urlencode(params)}"
        login = f"/auth/pro/login?{urlencode({'next': here})}"
        person_login = f"/connexion?{urlencode({'suivant': here})}"  # the portal's sign-in page
        return pages.login_required(here, login, person_login)
    offered = oauth.authorization.applicable(checked, user)
    if not offered:
        return RedirectResponse(
            oauth.authorization.deny(checked, user, source=_source(request)), 303
        )
    ticket = tickets.issue("authorize", binding, {"sub": user.subject, "req": checked.params()})
    return pages.grant_screen(
        checked.client_name,
        offered,
        ticket,
        "/oauth/authorize",
        professional=user.kind is Kind.PROFESSIONAL,
    )


@router.post("/oauth/authorize")
async def authorize_decision(
    request: Request,
    oauth: OAuthDep,
    tickets: TicketsDep,
    sessions: SessionsDep,
    accounts: AccountsDep,
) -> Response:
    """The user's answer on the grant screen."""
    return await _answer_form(request, _decide, oauth, tickets, sessions, accounts)


def _decide(
    request: Request,
    oauth: OAuthService,
    tickets: Tickets,
    sessions: SessionService,
    accounts: AccountService,
    form: dict[str, list[str]],
) -> Response:
    user, binding = _user(request, sessions, accounts)
    if user is None:
        return pages.error_page("Session expirée", "reconnectez-vous puis recommencez", 401)
    claims = _ticket_claims(
        tickets, "authorize", binding, user, form, "recommencez depuis l'application"
    )
    if isinstance(claims, Response):
        return claims
    if not isinstance(claims.get("req"), dict):
        return pages.error_page("Demande invalide", "cette demande n'est pas la vôtre", 403)
    try:
        checked = oauth.authorization.check_request(
            {**claims["req"], "aud": oauth.settings.token_audience}
        )
    except AuthorizeError as exc:
        return _authorize_refused(exc)
    source = _source(request)
    if form.get("decision", [""])[0] != "approve":
        return RedirectResponse(
            oauth.authorization.deny(checked, user, source=source), status_code=303
        )
    target = oauth.authorization.approve(checked, user, form.get("scope", []), source=source)
    return RedirectResponse(target, status_code=303)


@router.post("/oauth/token")
async def token(request: Request, oauth: OAuthDep) -> JSONResponse:
    """Authorization code, refresh token and client credentials grants."""
    try:
        form = await _client_form(request)
        # Off the event loop: database writes and secret hashing block.
        answer: dict[str, Any] = await run_in_threadpool(
            oauth.token, form, _basic(request), source=_source(request)
        )
    except OAuthError as exc:
        return _oauth_error(exc)
    return JSONResponse(answer, headers=_NO_STORE)


@router.post("/oauth/revoke")
async def revoke(request: Request, oauth: OAuthDep) -> Response:
    """RFC 7009 revocation: 200 whether or not the token was known."""
    try:
        form = await _client_form(request)
        await run_in_threadpool(oauth.revoke, form, _basic(request), source=_source(request))
    except OAuthError as exc:
        return _oauth_error(exc)
    return Response(status_code=200, headers=_NO_STORE)


@router.get("/oauth/grants")
def grants(
    request: Request,
    oauth: OAuthDep,
    tickets: TicketsDep,
    sessions: SessionsDep,
    accounts: AccountsDep,
) -> Response:
    """The logged-in person's authorised apps."""
    user, binding = _user(request, sessions, accounts)
    if user is None or user.kind is not Kind.PERSON or not user.patient_id:
        return pages.error_page("Connexion requise", "connectez-vous à votre espace", 401)
    ticket = tickets.issue("grants", binding, {"sub": user.subject})
    found = oauth.grants(user.patient_id)
    return pages.grants_page(found, ticket, "/oauth/grants/revoke")


@router.post("/oauth/grants/revoke")
async def revoke_grant(
    request: Request,
    oauth: OAuthDep,
    tickets: TicketsDep,
    sessions: SessionsDep,
    accounts: AccountsDep,
) -> Response:
    """Withdraw one app's access (its refresh tokens stop at once)."""
    return await _answer_form(request, _withdraw, oauth, tickets, sessions, accounts)


def _withdraw(
    request: Request,
    oauth: OAuthService,
    tickets: Tickets,
    sessions: SessionService,
    accounts: AccountService,
    form: dict[str, list[str]],
) -> Response:
    user, binding = _user(request, sessions, accounts)
    if user is None or user.kind is not Kind.PERSON or not user.patient_id:
        return pages.error_page("Connexion requise", "connectez-vous à votre espace", 401)
    claims = _ticket_claims(
        tickets, "grants", binding, user, form, "rechargez la page et recommencez"
    )
    if isinstance(claims, Response):
        return claims
    client_id = form.get("client_id", [""])[0]
    oauth.revoke_grant(user.patient_id, client_id, user, source=_source(request))
    return RedirectResponse("/oauth/grants", status_code=303)
