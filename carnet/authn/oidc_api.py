"""Professionals' OpenID Connect login (``/auth/pro``) and the development identity provider
(``/dev-idp``). Thin: parse, call ``ProfessionalLogin`` / ``DevIdentityProvider``, render.

Services (from carnet.dependencies): ProfessionalLogin, DevIdentityProvider (or None when the
professionals log in elsewhere), AccountService, SessionService, Settings.
"""

from __future__ import annotations

import ipaddress
import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from carnet.authn import pages
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.authn.oidc import DevIdentityProvider, OidcError
from carnet.authn.service import AccountError
from carnet.crypto.tokens import TokenSigner
from carnet.dependencies import AccountsDep, DevIdpDep, ProLoginDep, SessionsDep, SettingsDep
from carnet.settings import Settings

log = logging.getLogger("carnet.authn")

router = APIRouter(tags=["oidc"])
LOGIN_COOKIE = "carnet_pro_login"
_LOGIN_PATH = "/auth/pro"
_MAX_FORM = 8192


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _secure(settings: Settings) -> bool:
    return settings.issuer_url.startswith("https")


@router.get("/auth/pro/login")
def pro_login(request: Request, login: ProLoginDep, settings: SettingsDep) -> Response:
    """Send the browser to the professionals' identity provider (``?next=/path`` after login)."""
    try:
        url, ticket = login.start(request.query_params.get("next", "/"))
    except OidcError as exc:
        return pages.error_page("Connexion impossible", str(exc), 502)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        LOGIN_COOKIE,
        ticket,
        max_age=600,
        path=_LOGIN_PATH,
        httponly=True,
        samesite="lax",  # the identity provider's redirect back is a cross-site navigation
        secure=_secure(settings),
    )
    return response


@router.get("/auth/pro/callback")
def pro_callback(
    request: Request,
    login: ProLoginDep,
    accounts: AccountsDep,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Response:
    """The identity provider sends the browser back: verify, then open a portal session."""
    params = request.query_params
    source = _source(request)
    if "error" in params or not params.get("code"):
        login.audit_login(None, 401, source)
        return pages.error_page("Connexion refusée", "le fournisseur d'identité a refusé", 401)
    try:
        who, target = login.finish(
            params["code"], params.get("state", ""), request.cookies.get(LOGIN_COOKIE)
        )
    except OidcError as exc:
        login.audit_login(None, 401, source)
        return pages.error_page("Connexion refusée", str(exc), 401)
    sessions.close(request.cookies.get(SESSION_COOKIE))  # never keep a session set beforehand
    try:
        _, cookie, csrf = login.open_session(who, accounts, sessions, source=source)
    except AccountError:
        return pages.error_page("Compte désactivé", "ce compte ne peut pas se connecter", 403)
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    secure = _secure(settings)
    response.set_cookie(
        SESSION_COOKIE, cookie, path="/", httponly=True, samesite="strict", secure=secure
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, path="/", httponly=False, samesite="strict", secure=secure
    )
    response.delete_cookie(LOGIN_COOKIE, path=_LOGIN_PATH, httponly=True, secure=secure)
    return response


# -- the development identity provider --------------------------------------------------------


def development_idp(settings: Settings, signer: TokenSigner) -> DevIdentityProvider | None:
    """The built-in development identity provider, only when the ``dev_idp`` setting turns it on
    and professionals log in with it (``oidc_issuer`` left empty); None otherwise (its endpoints
    answer 404)."""
    built_in = settings.oidc_issuer == settings.issuer_url + "/dev-idp"
    return DevIdentityProvider(settings, signer) if settings.dev_idp and built_in else None


def warn_if_development_idp(idp: DevIdentityProvider | None) -> None:
    """At startup: say loudly that anyone on loopback can log in as any demo professional."""
    if idp is not None:
        log.warning(
            "the development identity provider is ON (/dev-idp, setting dev_idp): "
            "anyone on loopback logs in as a demo professional; never in production"
        )


def _is_loopback(host: str | None) -> bool:
    if host in ("testclient", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


def _dev(request: Request, idp: DevIdentityProvider | None) -> DevIdentityProvider:
    if idp is None:
        raise HTTPException(status_code=404, detail="no development identity provider here")
    if not _is_loopback(request.client.host if request.client else None):
        raise HTTPException(status_code=403, detail="the development identity provider is local")
    return idp


@router.get("/dev-idp/.well-known/openid-configuration")
def dev_discovery(request: Request, idp: DevIdpDep) -> JSONResponse:
    return JSONResponse(_dev(request, idp).discovery())


@router.get("/dev-idp/jwks")
def dev_jwks(request: Request, idp: DevIdpDep) -> JSONResponse:
    return JSONResponse(_dev(request, idp).jwks())


@router.get("/dev-idp/authorize")
def dev_authorize(request: Request, dev_idp: DevIdpDep) -> Response:
    """The development login page: pick a professional."""
    idp = _dev(request, dev_idp)
    try:
        fields = idp.check_authorize(dict(request.query_params))
    except OidcError as exc:
        return pages.error_page("Demande refusée", str(exc))
    choices = [(p.rpps, p.profession, p.label) for p in idp.professionals.values()]
    return pages.professional_picker(choices, fields, "/dev-idp/authorize")


@router.post("/dev-idp/authorize")
async def dev_authorize_login(request: Request, dev_idp: DevIdpDep) -> Response:
    idp = _dev(request, dev_idp)
    if int(request.headers.get("content-length") or 0) > _MAX_FORM:
        return pages.error_page("Demande refusée", "formulaire trop long")
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        target = idp.login(form, form.get("rpps", ""))
    except OidcError as exc:
        return pages.error_page("Demande refusée", str(exc))
    return RedirectResponse(target, status_code=303)


@router.post("/dev-idp/token")
async def dev_token(request: Request, dev_idp: DevIdpDep) -> JSONResponse:
    idp = _dev(request, dev_idp)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        answer = idp.token(form)
    except OidcError as exc:
        return JSONResponse(
            {"error": "invalid_grant", "error_description": str(exc)},
            status_code=400,
            headers={"Cache-Control": "no-store"},
        )
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})
