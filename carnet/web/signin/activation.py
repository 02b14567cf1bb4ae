"""First activation of a space created automatically: the code from the notification outbox,
then a login and a password, then a second factor enrolled from a QR code drawn on the server;
or, with the same code, an objection to the space.

State between the steps travels in short-lived signed tickets (carnet/authn/tickets.py) bound to
the anonymous form cookie, so a ticket copied to another browser is worth nothing. The code is
used up in the transaction that creates the account (one account per code, even raced), and the
accounts service refuses a second person account for the space (``AccountService.insert_in``,
backed by a unique index); the space's objection goes through RecordService like
POST /record/objection.
"""

from __future__ import annotations

from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from carnet.authn.passwords import PasswordPolicyError
from carnet.authn.service import AccountError, AccountExistsError, SpaceHasAccountError
from carnet.caller import Kind, Principal, RequestContext
from carnet.crypto.tokens import TokenError
from carnet.dependencies import (
    AccountsDep,
    LoginDep,
    RecordDep,
    SessionsDep,
    SettingsDep,
    TicketsDep,
)
from carnet.fhir.errors import FhirError
from carnet.record.activation import ACTIVATION, Redeemed
from carnet.web.caller import AnonymousForm, source_of
from carnet.web.flash import redirect, register_flash
from carnet.web.i18n import N_
from carnet.web.security import FORM_COOKIE, set_session_cookies
from carnet.web.signin.router import WRONG_PASSWORD, refusal_message
from carnet.web.templating import page_locale, render, translator

router = APIRouter(include_in_schema=False)

ACTIVATED = register_flash("activated", N_("Votre espace est activé. Bienvenue !"))
WRONG_CODE = N_("Ce code d'activation n'est pas valable : vérifiez-le, ou demandez-en un nouveau.")
EXPIRED_STEP = N_("Cette étape a expiré : saisissez de nouveau votre code d'activation.")
TAKEN = N_("Cet identifiant est déjà pris : choisissez-en un autre.")
WEAK = N_(
    "Ce mot de passe est trop facile à deviner : choisissez une phrase de plusieurs mots, "
    "12 caractères au moins."
)
DIFFERENT = N_("Les deux mots de passe ne sont pas identiques.")
ALREADY = N_("Cet espace a déjà un compte : connectez-vous.")
WRONG_TOTP = N_("Ce code n'est pas le bon. Vérifiez l'heure de votre téléphone et réessayez.")
REQUIRED = N_("Ce champ est obligatoire.")


def _binding(request: Request) -> str:
    return request.cookies.get(FORM_COOKIE, "")


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


@router.get("/activation")
def activation_form(request: Request) -> Response:
    """Step 1: the activation code."""
    return render(request, "signin/activation_code.html", {"errors": {}, "code": ""})


@router.post("/activation")
async def check_activation_code(
    request: Request,
    form: AnonymousForm,
    record: RecordDep,
    tickets: TicketsDep,
    accounts: AccountsDep,
    verifier: LoginDep,
) -> Response:
    """The code opens step 2 (choose a login and password, or object). A code refused is an
    audit event (``activation``), in the person's history when it is their space's."""
    gettext = translator(page_locale(request))
    code = _text(form, "code")
    redeemed = await run_in_threadpool(record.activation.check, code, ACTIVATION)
    if redeemed is None:
        if code:
            await run_in_threadpool(verifier.activation_refused, None, source_of(request), 400)
        errors = {"code": gettext(WRONG_CODE if code else REQUIRED)}
        return render(
            request, "signin/activation_code.html", {"errors": errors, "code": code}, status=400
        )
    account = await run_in_threadpool(accounts.person_account_of, redeemed.patient_id)
    if account is not None and accounts.unfinished_activation(account):
        # Left at the QR code: the account's own password lets its second factor be enrolled.
        claims = {"pid": redeemed.patient_id, "code": code}
        ticket = tickets.issue("activation-finish", _binding(request), claims)
        context = {"errors": {}, "ticket": ticket, "login": ""}
        return render(request, "signin/activation_finish.html", context)
    if account is not None:
        await run_in_threadpool(
            verifier.activation_refused, redeemed.patient_id, source_of(request), 409
        )
        return _already(request)
    ticket = tickets.issue(
        "activation", _binding(request), {"pid": redeemed.patient_id, "code": code}
    )
    return render(
        request, "signin/activation_account.html", {"errors": {}, "ticket": ticket, "login": ""}
    )


def _claims(tickets: Any, request: Request, form: Any, purpose: str) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = tickets.check(purpose, _binding(request), _text(form, "ticket"))
    except TokenError:
        return None
    return claims


def _back_to_code(request: Request, message: str) -> Response:
    """The code step again (400), with ``message`` (untranslated) on the code field."""
    gettext = translator(page_locale(request))
    return render(
        request,
        "signin/activation_code.html",
        {"errors": {"code": gettext(message)}, "code": ""},
        status=400,
    )


def _already(request: Request) -> Response:
    """The space has its account: a code (a letter sent again, one issued at the desk) is no
    second way into the record; the person signs in, or resets a forgotten password."""
    return _back_to_code(request, ALREADY)


def _expired(request: Request) -> Response:
    return _back_to_code(request, EXPIRED_STEP)


@router.post("/activation/compte")
async def create_account(
    request: Request,
    form: AnonymousForm,
    record: RecordDep,
    tickets: TicketsDep,
    accounts: AccountsDep,
    verifier: LoginDep,
) -> Response:
    """Step 2: the account (login and password); then the second factor's QR code. The account
    created is an event of the person's history (``activation``), committed with it."""
    claims = _claims(tickets, request, form, "activation")
    if claims is None:
        return _expired(request)
    gettext = translator(page_locale(request))
    login, password, again = (
        _text(form, "login"),
        _text(form, "password"),
        _text(form, "confirmation"),
    )
    errors = {
        name: gettext(REQUIRED)
        for name in ("login", "password", "confirmation")
        if not _text(form, name)
    }
    if not errors and password != again:
        errors["confirmation"] = gettext(DIFFERENT)
    context = {"ticket": _text(form, "ticket"), "login": login}
    source = source_of(request)

    def make() -> tuple[str, str] | dict[str, str]:
        if record.activation.check(claims["code"], ACTIVATION) is None:
            return {"code": gettext(EXPIRED_STEP)}
        try:
            new = accounts.new_person(login, password)
        except (AccountError, PasswordPolicyError):
            # The policy's refusal is the person's to correct (a message), not a server error.
            return {"password": gettext(WEAK)}

        def made_in(conn: Connection, redeemed: Redeemed) -> tuple[str, str]:
            account_id = accounts.insert_in(conn, new, patient_id=redeemed.patient_id)
            # The seed with the account: never an activated account without a second factor.
            uri = accounts.enroll_totp_in(conn, account_id)
            verifier.activated_in(conn, account_id, source)  # their history, or nothing
            return account_id, uri

        try:
            # The code is claimed and the account inserted in one transaction: of two
            # submissions of one code, one account (record.activation.spend).
            made = record.activation.spend(claims["code"], ACTIVATION, made_in)
        except SpaceHasAccountError:  # made since the code step (the desk, another code)
            verifier.activation_refused(claims["pid"], source, 409)
            return {"already": gettext(ALREADY)}
        except AccountExistsError:
            return {"login": gettext(TAKEN)}
        return {"code": gettext(EXPIRED_STEP)} if made is None else made

    made: tuple[str, str] | dict[str, str] = errors or await run_in_threadpool(make)
    if isinstance(made, dict):
        if "code" in made:
            return _expired(request)
        if "already" in made:
            return _already(request)
        return render(
            request, "signin/activation_account.html", {**context, "errors": made}, status=400
        )
    account_id, uri = made
    ticket = tickets.issue("activation-totp", _binding(request), {"acct": account_id, "uri": uri})
    return _totp_page(request, ticket, uri, {})


@router.post("/activation/reprise")
async def finish_activation(
    request: Request,
    form: AnonymousForm,
    record: RecordDep,
    tickets: TicketsDep,
    accounts: AccountsDep,
    verifier: LoginDep,
) -> Response:
    """Step 2 of an activation left unfinished (``AccountService.unfinished_activation``): the
    account's own login and password (checked, throttled and audited as a sign-in), then a new
    QR code for that same account's second factor, the code spent with the enrolment."""
    claims = _claims(tickets, request, form, "activation-finish")
    if claims is None:
        return _expired(request)
    gettext = translator(page_locale(request))
    login, password = _text(form, "login"), _text(form, "password")
    errors = {n: gettext(REQUIRED) for n in ("login", "password") if not _text(form, n)}
    source = source_of(request)

    def enrol() -> tuple[str, str] | dict[str, str]:
        try:
            account_id = verifier.verify_password_login(login, password, source)
        except AccountError as exc:
            return {"password": refusal_message(request, exc)}
        account = accounts.account(account_id)
        if account is None or account.patient_id != claims["pid"]:
            return {"password": gettext(WRONG_PASSWORD)}  # another account opens nothing here
        if not accounts.unfinished_activation(account):
            return {"already": gettext(ALREADY)}

        def enrolled_in(conn: Connection, redeemed: Redeemed) -> str:
            if redeemed.patient_id != account.patient_id:
                raise AccountError("the code is another space's")
            uri = accounts.enroll_totp_in(conn, account_id, unfinished=True)
            verifier.activated_in(conn, account_id, source)
            return uri

        try:
            uri = record.activation.spend(claims["code"], ACTIVATION, enrolled_in)
        except AccountError:  # confirmed meanwhile: the claim rolled back
            return {"already": gettext(ALREADY)}
        return {"code": gettext(EXPIRED_STEP)} if uri is None else (account_id, uri)

    done: tuple[str, str] | dict[str, str] = errors or await run_in_threadpool(enrol)
    if isinstance(done, dict):
        if "code" in done:
            return _expired(request)
        if "already" in done:
            return _already(request)
        context = {"ticket": _text(form, "ticket"), "login": login, "errors": done}
        return render(request, "signin/activation_finish.html", context, status=400)
    account_id, uri = done
    ticket = tickets.issue("activation-totp", _binding(request), {"acct": account_id, "uri": uri})
    return _totp_page(request, ticket, uri, {})


def _totp_page(
    request: Request, ticket: str, uri: str, errors: dict[str, str], status: int = 200
) -> Response:
    gettext = translator(page_locale(request))
    qr = segno.make(uri, error="m")
    svg = qr.svg_inline(scale=5, dark="#000", light="#fff", title=gettext(N_("QR code à scanner")))
    secret = uri.split("secret=")[1].split("&")[0] if "secret=" in uri else ""
    context = {
        "ticket": ticket,
        "qr": Markup(svg),  # noqa: S704 - segno's SVG of our own URI
        "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "errors": errors,
    }
    return render(request, "signin/activation_totp.html", context, status=status)


@router.post("/activation/verification")
async def confirm_second_factor(
    request: Request,
    form: AnonymousForm,
    tickets: TicketsDep,
    accounts: AccountsDep,
    verifier: LoginDep,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Response:
    """Step 3: the first code of the authenticator app proves the enrolment; the person is in."""
    claims = _claims(tickets, request, form, "activation-totp")
    if claims is None:
        return _expired(request)
    gettext = translator(page_locale(request))
    code = _text(form, "code").replace(" ", "")
    try:
        if not code:
            raise AccountError("no code")
        await run_in_threadpool(verifier.verify_totp, claims["acct"], code, source_of(request))
    except AccountError:
        errors = {"code": gettext(WRONG_TOTP if code else REQUIRED)}
        return _totp_page(request, _text(form, "ticket"), claims["uri"], errors, status=400)
    cookie, csrf = await run_in_threadpool(sessions.open, claims["acct"], True)
    response = redirect("/espace", ACTIVATED)
    set_session_cookies(response, settings, cookie, csrf)
    return response


@router.post("/activation/opposition")
async def object_to_space(
    request: Request, form: AnonymousForm, record: RecordDep, tickets: TicketsDep
) -> Response:
    """The person refuses the space with their activation code: refused (inside the window) or
    closed, as POST /record/objection does; the code is used up with it, or not at all."""
    claims = _claims(tickets, request, form, "activation")
    if claims is None:
        return _expired(request)
    patient_id = str(claims["pid"])
    holder = Principal(Kind.PERSON, f"activation:{patient_id[:36]}", patient_id=patient_id)
    ctx = RequestContext(holder, holder.subject, source_of(request), purpose="accounts")

    def refuse() -> str | None:
        try:
            # The code is claimed in the objection's transaction: a refused objection keeps it.
            return record.object_with_code(patient_id, claims["code"], ctx=ctx)
        except FhirError:
            return None

    state = await run_in_threadpool(refuse)
    if state is None:
        return _expired(request)
    return render(request, "signin/objection_done.html", {"state": state})
