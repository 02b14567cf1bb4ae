"""The portal on the application: its routers (``ROUTERS``, included by carnet/app.py with the
API's), and ``mount``: its static files and the answers of a page that cannot go on (sign in
first, a refused form, another kind of caller, a record that is not the caller's)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from carnet.settings import Settings
from carnet.web import router as home
from carnet.web.caller import (
    SIGN_IN_PATH,
    CsrfRefusedError,
    SignInRequiredError,
    WrongKindOfCallerError,
)
from carnet.web.flash import redirect
from carnet.web.hub import router as hub_pages
from carnet.web.patient_controls import router as patient_controls
from carnet.web.patient_controls.deps import NotTheirsError
from carnet.web.pro import router as pro
from carnet.web.profile import router as profile
from carnet.web.record import router as record
from carnet.web.record import upload
from carnet.web.router import not_found_page
from carnet.web.signin import activation, forgotten
from carnet.web.signin import router as signin
from carnet.web.templating import render
from carnet.web.theme import mount_theme
from carnet.web.watch import router as watch_pages

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/static"

ROUTERS: tuple[APIRouter, ...] = (
    home.router,
    signin.router,
    activation.router,
    forgotten.router,
    record.router,
    hub_pages.router,
    patient_controls.router,
    pro.router,  # the professionals' workspace (carnet/web/pro)
    upload.router,
    profile.router,  # the medical profile (carnet/web/profile)
    watch_pages.router,  # the security officer's alert queue
)


def mount(app: FastAPI, settings: Settings) -> None:
    """Add the portal's static files and page answers to ``app`` (called once by carnet/app.py,
    after the routes: its ``ROUTERS`` come first)."""
    mount_theme(app, settings)  # before /static: /static/dsfr is the DSFR's, when chosen
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(SignInRequiredError)
    async def sign_in_first(_request: Request, exc: SignInRequiredError) -> Response:
        return redirect(f"{SIGN_IN_PATH}?{urlencode({'suivant': exc.next_path})}")

    @app.exception_handler(CsrfRefusedError)
    async def form_refused(request: Request, _exc: CsrfRefusedError) -> Response:
        return render(request, "error.html", {"kind": "form-expired"}, status=403)

    @app.exception_handler(WrongKindOfCallerError)
    async def wrong_kind(request: Request, _exc: WrongKindOfCallerError) -> Response:
        return render(request, "error.html", {"kind": "wrong-space"}, status=403)

    @app.exception_handler(NotTheirsError)
    async def not_theirs(request: Request, _exc: NotTheirsError) -> Response:
        return not_found_page(request)  # a record one neither is nor represents: missing
