"""A page's caller: the session cookie becomes the Principal and RequestContext of the person or
professional asking, exactly as the API's guard would find them, and every POST's CSRF token is
checked before the page runs.

Pages declare what they need as a parameter, never read cookies themselves::

    @router.get("/dossier")
    def record(caller: PersonPage, fhir: FhirDep) -> HTMLResponse:
        results = fhir.search("Observation", {...}, ctx=caller.ctx)  # the caller's own rights

A page without a session answers 303 to the sign-in page (carnet/web/wiring.py turns
``SignInRequiredError`` into that redirect); a POST without its token is refused with a 403 page and
changes nothing; a page for another kind of caller answers 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from carnet.authn.api import SESSION_COOKIE
from carnet.caller import Kind, Principal, RequestContext
from carnet.dependencies import AccountsDep, SessionsDep, SettingsDep
from carnet.fhir.service import FhirService, FhirSession
from carnet.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    FORM_COOKIE,
    SESSION_CSRF_COOKIE,
    cross_origin,
    same_token,
    usable_token,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGN_IN_PATH = "/connexion"


class SignInRequiredError(Exception):
    """No usable session: the page answers 303 to the sign-in page, then back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign-in required")
        self.next_path = next_path


class CsrfRefusedError(Exception):
    """A POST without the right CSRF token (or from another site): refused, nothing changed."""


class WrongKindOfCallerError(Exception):
    """A signed-in caller on a page for another kind of caller (a professional on a patient page)."""


@dataclass(frozen=True)
class PageCaller:
    """Who is asking for a page: the principal, the context every service takes, and the CSRF
    token the page's forms carry."""

    principal: Principal
    ctx: RequestContext
    csrf_token: str

    @property
    def patient_id(self) -> str | None:
        return self.principal.patient_id

    @contextmanager
    def fhir_session(
        self, fhir: FhirService, action: str, res_type: str | None = None, res_id: str | None = None
    ) -> Iterator[FhirSession]:
        """One FHIR interaction as this caller (the policy and the audit apply as for the API)."""
        with fhir.session(self.ctx, action, res_type, res_id) as session:
            yield session


def source_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _back_here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def offered_csrf(request: Request) -> str | None:
    """The token a POST offers: the ``X-CSRF-Token`` header of a script, else the form field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None
    form = await request.form()  # Starlette keeps it: the page reads the same form again
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def _refuse(request: Request) -> CsrfRefusedError:
    """The refusal of a POST, after closing the files its form spooled (an upload)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        await (await request.form()).close()
    return CsrfRefusedError()


async def signed_in_page(
    request: Request, accounts: AccountsDep, sessions: SessionsDep, settings: SettingsDep
) -> PageCaller:
    """The caller of a page reserved to signed-in people; checks the CSRF token of a POST."""
    cookie = request.cookies.get(SESSION_COOKIE)
    principal = (
        None if cookie is None else await run_in_threadpool(sessions.principal, cookie, accounts)
    )
    if principal is None:
        if request.method not in SAFE_METHODS:
            raise await _refuse(request)  # a form posted after its session ended: sign in again
        raise SignInRequiredError(_back_here(request))
    csrf = usable_token(request.cookies.get(SESSION_CSRF_COOKIE)) or ""
    if request.method not in SAFE_METHODS:
        offered = await offered_csrf(request)
        if cross_origin(request, settings) or not await run_in_threadpool(
            sessions.check_csrf, cookie, offered
        ):
            raise await _refuse(request)
    ctx = RequestContext(
        principal=principal, actor=principal.subject, source=source_of(request), purpose="care"
    )
    return PageCaller(principal, ctx, csrf)


async def person_page(caller: Annotated[PageCaller, Depends(signed_in_page)]) -> PageCaller:
    """A page of a person's own space (a patient, or a representative acting for them)."""
    if caller.principal.kind is not Kind.PERSON or caller.principal.patient_id is None:
        raise WrongKindOfCallerError
    return caller


async def professional_page(caller: Annotated[PageCaller, Depends(signed_in_page)]) -> PageCaller:
    """A page of the professionals' workspace."""
    if caller.principal.kind is not Kind.PROFESSIONAL:
        raise WrongKindOfCallerError
    return caller


async def optional_caller(
    request: Request, accounts: AccountsDep, sessions: SessionsDep
) -> Principal | None:
    """Who is signed in on a public page (the home page), if anyone; never refuses."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        return None
    return await run_in_threadpool(sessions.principal, cookie, accounts)


async def anonymous_form(request: Request, settings: SettingsDep) -> FormData:
    """The form of a page shown before sign-in, once its double-submit token is checked."""
    offered = await offered_csrf(request)
    if cross_origin(request, settings) or not same_token(request.cookies.get(FORM_COOKIE), offered):
        raise await _refuse(request)
    return await request.form()


SignedInPage = Annotated[PageCaller, Depends(signed_in_page)]
PersonPage = Annotated[PageCaller, Depends(person_page)]
ProfessionalPage = Annotated[PageCaller, Depends(professional_page)]
OptionalCaller = Annotated[Principal | None, Depends(optional_caller)]
AnonymousForm = Annotated[FormData, Depends(anonymous_form)]
