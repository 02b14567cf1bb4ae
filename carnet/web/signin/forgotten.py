"""A forgotten password: the person gives their login; a one-time code goes to them through the
notification outbox (never shown on the page); with it they choose a new password, and every
session of the account ends. The page answers the same whether the login exists or not."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from carnet.authn.passwords import PasswordPolicyError
from carnet.authn.service import Account, AccountError, LoginThrottledError
from carnet.caller import Kind, Principal, RequestContext
from carnet.dependencies import AccountsDep, LoginDep, OAuthDep, RecordDep, SessionsDep
from carnet.fhir.errors import FhirError
from carnet.record.activation import PASSWORD_RESET, Redeemed
from carnet.web.caller import SIGN_IN_PATH, AnonymousForm, source_of
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.templating import page_locale, render, translator

router = APIRouter(include_in_schema=False)

FORGOTTEN_PATH = "/mot-de-passe-oublie"
NEW_PATH = "/mot-de-passe-oublie/nouveau"
CHANGED = register_flash(
    "password-changed", N_("Votre mot de passe est changé : connectez-vous avec le nouveau.")
)
WRONG_CODE = N_("Ce code n'est pas valable (ou plus) : demandez-en un nouveau.")
WEAK = N_(
    "Ce mot de passe est trop facile à deviner : choisissez une phrase de plusieurs mots, "
    "12 caractères au moins."
)
DIFFERENT = N_("Les deux mots de passe ne sont pas identiques.")
REQUIRED = N_("Ce champ est obligatoire.")
THROTTLED = N_("Trop de demandes. Réessayez dans %(seconds)d secondes.")


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _as_person(account: Account, request: Request) -> RequestContext:
    """The person the login names, acting for themselves (a code reaches only them)."""
    person = Principal(Kind.PERSON, account.account_id, patient_id=account.patient_id)
    return RequestContext(person, person.subject, source_of(request), purpose="authentication")


@router.get(FORGOTTEN_PATH)
def forgotten_form(request: Request) -> Response:
    """Step 1: the login."""
    return render(request, "signin/forgotten.html", {"errors": {}, "login": ""})


@router.post(FORGOTTEN_PATH)
async def send_code(
    request: Request,
    form: AnonymousForm,
    accounts: AccountsDep,
    record: RecordDep,
    verifier: LoginDep,
) -> Response:
    """Queue a reset code for the person's own channel, if the login is a person's; the answer
    is the same either way. Requests are throttled like sign-ins (each one notifies the person
    and voids their previous code): too many for a login, or from an address, wait (429), known
    login or not."""
    login = _text(form, "login")
    gettext = translator(page_locale(request))
    if not login:
        context = {"errors": {"login": gettext(REQUIRED)}, "login": ""}
        return render(request, "signin/forgotten.html", context, status=400)
    try:
        await run_in_threadpool(verifier.check_reset_request, login, source_of(request))
    except LoginThrottledError as exc:
        message = gettext(THROTTLED) % {"seconds": exc.retry_after}
        context = {"errors": {"login": message}, "login": login}
        answer = render(request, "signin/forgotten.html", context, status=429)
        answer.headers["Retry-After"] = str(exc.retry_after)
        return answer

    def issue() -> None:
        account = accounts.find_by_login(login)
        if account is None or account.kind is not Kind.PERSON or not account.patient_id:
            return
        # The person asks for their own code; it goes only to their own address.
        ctx = _as_person(account, request)
        try:
            record.activation.issue(account.patient_id, ctx=ctx, purpose=PASSWORD_RESET)
        except FhirError:
            return  # a closed space: no message, and the same page

    await run_in_threadpool(issue)
    return render(request, "signin/forgotten_new.html", {"errors": {}, "login": login})


@router.post(NEW_PATH)
async def choose_password(
    request: Request,
    form: AnonymousForm,
    accounts: AccountsDep,
    record: RecordDep,
    sessions: SessionsDep,
    oauth: OAuthDep,
    verifier: LoginDep,
) -> Response:
    """Step 2: the code and the new password; every session of the account and every refresh
    token of its apps end with it (docs/access.md). The reset, or the code's refusal, is an
    event of the person's history (``password-reset``)."""
    gettext = translator(page_locale(request))
    login, code = _text(form, "login"), _text(form, "code")
    password, again = _text(form, "password"), _text(form, "confirmation")
    errors = {
        name: gettext(REQUIRED)
        for name in ("code", "password", "confirmation")
        if not _text(form, name)
    }
    if not errors and password != again:
        errors["confirmation"] = gettext(DIFFERENT)

    def change() -> dict[str, str]:
        account = accounts.find_by_login(login)
        redeemed = record.activation.check(code, PASSWORD_RESET)
        if account is None or redeemed is None or redeemed.patient_id != account.patient_id:
            verifier.reset_refused(login, source_of(request))  # audited, as a wrong sign-in
            return {"code": gettext(WRONG_CODE)}
        try:
            hashed = accounts.new_password(password, login)
        except (AccountError, PasswordPolicyError):
            # The policy's refusal is the person's to correct (a message), not a server error.
            return {"password": gettext(WEAK)}

        def grant(conn: Connection, spent: Redeemed) -> bool:
            if spent.patient_id != account.patient_id:  # checked above; never another's code
                raise AccountError("the code is not this account's")  # rolls the claim back
            accounts.set_password_in(conn, account.account_id, hashed)
            sessions.close_all_in(conn, account.account_id)
            # Whoever took the account over may have authorised an app: its refresh tokens end.
            oauth.end_refresh_tokens_in(conn, account.account_id, _as_person(account, request))
            verifier.reset_in(conn, account.account_id, source_of(request))  # their history
            return True

        # The code is claimed, the password set and the sessions ended in one transaction: of
        # two submissions of one code, one password (record.activation.spend).
        try:
            if record.activation.spend(code, PASSWORD_RESET, grant):
                return {}
        except AccountError:
            pass
        verifier.reset_refused(login, source_of(request))
        return {"code": gettext(WRONG_CODE)}

    if not errors:
        errors = await run_in_threadpool(change)
    if errors:
        context = {"errors": errors, "login": login}
        return render(request, "signin/forgotten_new.html", context, status=400)
    return redirect(SIGN_IN_PATH, CHANGED)
