"""The portal's own pages: home, language switch, sign-out. Each area adds its own router
(carnet/web/<area>/router.py) through carnet/web/wiring.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.dependencies import LoginDep, SessionsDep, SettingsDep
from carnet.web.caller import OptionalCaller, PersonPage, SignedInPage, source_of
from carnet.web.flash import LANGUAGE_CHANGED, SIGNED_OUT, local_path, redirect
from carnet.web.i18n import LANGUAGE_COOKIE, LOCALES
from carnet.web.security import secure_cookies
from carnet.web.space import space_links
from carnet.web.templating import render

router = APIRouter(include_in_schema=False)  # pages are not part of the API's description

ONE_YEAR = 365 * 24 * 3600


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


@router.get("/", response_model=None)
def home(request: Request, caller: OptionalCaller) -> Response:
    """The portal's home page; a client asking for JSON gets the service's pointers as before."""
    if _wants_json(request):
        return JSONResponse({"service": "Carnet", "fhir": "/fhir/metadata"})
    return render(request, "home.html", caller=caller)


@router.get("/espace")
def space(request: Request, caller: PersonPage) -> Response:
    """The person's space: where each part of it (record, controls, history) is linked from."""
    return render(
        request,
        "space.html",
        {"space_links": space_links()},
        caller=caller.principal,
        csrf_token=caller.csrf_token,
    )


@router.get("/langue/{code}")
def switch_language(code: str, request: Request, settings: SettingsDep) -> Response:
    """Remember the chosen language (a preference cookie, nothing else) and go back."""
    back = local_path(request.query_params.get("suivant"))
    if code not in LOCALES:
        return redirect(back)
    response = redirect(back, LANGUAGE_CHANGED)
    response.set_cookie(
        LANGUAGE_COOKIE,
        code,
        max_age=ONE_YEAR,
        path="/",
        samesite="lax",
        secure=secure_cookies(settings),
    )
    return response


@router.post("/deconnexion")
async def sign_out(
    request: Request,
    caller: SignedInPage,
    login: LoginDep,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Response:
    """End the session (the CSRF token was checked by the caller dependency)."""
    await run_in_threadpool(sessions.close, request.cookies.get(SESSION_COOKIE))
    await run_in_threadpool(login.logged_out, caller.principal.subject, source_of(request))
    response = redirect("/", SIGNED_OUT)
    secure = secure_cookies(settings)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure
    )
    response.delete_cookie(CSRF_COOKIE, path="/", httponly=False, samesite="strict", secure=secure)
    return response


def not_found_page(request: Request) -> HTMLResponse:
    """What a page answers for an item that is missing, foreign or hidden: the same page."""
    return render(request, "error.html", {"kind": "not-found"}, status=404)
