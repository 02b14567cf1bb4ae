"""Who may call, for operators: login accounts (`carnet accounts add-person|add-professional|
add-operator`), OAuth clients (`carnet clients add|list|remove`: SMART apps and backend services)
and operator tokens (`carnet token issue`).

Passwords are prompted (hidden, typed twice), never taken from the command line; the TOTP
enrolment URI is printed once, for the person to scan, and cannot be shown again; a confidential
client's secret is printed once, at registration. Output holds ids, never the login.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carnet.cli.shell import err, fail, local_operator, open_services, say, settings_of

if TYPE_CHECKING:
    from carnet.app import Services
    from carnet.authn.service import AccountService

# -- login accounts (`carnet accounts add-*`) -----------------------------------------------------


def _patient_exists(services: Services, patient_id: str) -> bool:
    from carnet.caller import RequestContext
    from carnet.fhir.errors import FhirError

    ctx = RequestContext.local_operator(actor=local_operator(), source="cli", purpose="operations")
    try:
        services.fhir.read("Patient", patient_id, ctx=ctx)
    except FhirError:
        return False
    return True


def _create(
    ctx: typer.Context, kind: str, make: Callable[[Services, AccountService], str], totp: bool
) -> None:
    """Run ``make(services, accounts) -> account id``, enrol TOTP if asked, print one line each."""
    from carnet.authn.passwords import PasswordPolicyError
    from carnet.authn.service import AccountError

    with open_services(settings_of(ctx)) as services:
        try:
            account_id = make(services, services.accounts)
            uri = services.accounts.enroll_totp(account_id) if totp else None
        except (AccountError, PasswordPolicyError) as exc:
            raise fail(str(exc)) from None
    say(f"account {account_id} created ({kind})")
    if uri:
        say(f"second factor (scan once in an authenticator app, not shown again): {uri}")


PasswordOption = Annotated[
    str,
    typer.Option(
        prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted if not given."
    ),
]
TotpOption = Annotated[
    bool, typer.Option("--totp/--no-totp", help="Enrol a TOTP second factor now (default).")
]


def add_person(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(help="The person's login (e-mail address).")],
    patient: Annotated[str, typer.Option(help="Id of the person's own Patient resource.")],
    password: PasswordOption,
    totp: TotpOption = True,
) -> None:
    """Create a person's login account for their record, with a TOTP second factor."""

    def make(services: Services, accounts: AccountService) -> str:
        if not _patient_exists(services, patient):
            raise fail(f"no Patient/{patient}")
        return accounts.create_person(login, password, patient)

    _create(ctx, "person", make, totp)


def add_professional(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(help="The professional's login.")],
    rpps: Annotated[str, typer.Option(help="RPPS number.")],
    profession: Annotated[str, typer.Option(help="physician, nurse, pharmacist, ...")],
    oidc_only: Annotated[
        bool, typer.Option("--oidc-only", help="No password: OpenID Connect login only.")
    ] = False,
    totp: TotpOption = True,
) -> None:
    """Create a health professional's account (password + TOTP, or OpenID Connect only)."""
    password = None
    if not oidc_only:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    def make(_services: Services, accounts: AccountService) -> str:
        return accounts.create_professional(login, password, rpps, profession)

    _create(ctx, f"professional:{profession}", make, totp and not oidc_only)


def add_operator(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(help="The operator's login.")],
    password: PasswordOption,
    totp: TotpOption = True,
) -> None:
    """Create an operator's account (system/*.* scopes), with a TOTP second factor."""

    def make(_services: Services, accounts: AccountService) -> str:
        return accounts.create_operator(login, password)

    _create(ctx, "operator", make, totp)


# -- OAuth clients (`carnet clients ...`) ---------------------------------------------------------


def clients_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The app's or service's name, as users see it.")],
    kind: Annotated[str, typer.Option(help="public (PKCE), confidential or backend.")] = "public",
    scope: Annotated[
        list[str],
        typer.Option(help="Largest scope it may be granted (repeat), e.g. 'patient/*.rs'."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    redirect_uri: Annotated[
        list[str], typer.Option(help="A redirect URI (repeat); apps need at least one.")
    ] = [],  # noqa: B006
    jwks: Annotated[
        Path | None, typer.Option(help="File with the JWKS of its public keys (backend).")
    ] = None,
    jwks_url: Annotated[
        str | None,
        typer.Option(help="https URL where it publishes its JWKS (a host of jwks_url_hosts)."),
    ] = None,
    client_id: Annotated[str | None, typer.Option(help="Client id (default: random).")] = None,
) -> None:
    """Register an OAuth client; prints its id (and a confidential client's secret, once)."""
    from carnet.authn.clients import ClientError, ClientService

    keys = None
    if jwks is not None:
        try:
            keys = json.loads(jwks.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise fail(f"cannot read the JWKS {jwks}: {type(exc).__name__}") from None
        if not isinstance(keys, dict):
            raise fail("a JWKS file holds a JSON object")
    with open_services(settings_of(ctx)) as services:
        try:
            client, secret = ClientService(services.engine, services.settings).register(
                name,
                kind,
                scope,
                redirect_uris=redirect_uri,
                jwks=keys,
                jwks_url=jwks_url,
                client_id=client_id,
            )
        except ClientError as exc:
            raise fail(str(exc)) from None
    say(f"client {client.client_id} registered ({client.kind.value})")
    if secret:
        say(f"client secret (shown once, store it in the app's configuration): {secret}")


def clients_list(ctx: typer.Context) -> None:
    """List registered clients: id, kind, allowed scopes, redirect URIs, JWKS URL."""
    from carnet.authn.clients import ClientService

    with open_services(settings_of(ctx)) as services:
        found = ClientService(services.engine, services.settings).all()
    if not found:
        say("no client registered")
    for c in found:
        uris = ", ".join(c.redirect_uris) or "-"
        keys = f"  jwks: {c.jwks_url}" if c.jwks_url else ""
        say(f"{c.client_id}  {c.kind.value}  scopes: {' '.join(c.scopes)}  redirect: {uris}{keys}")


def clients_remove(
    ctx: typer.Context, client_id: Annotated[str, typer.Argument(help="Client id.")]
) -> None:
    """Remove a client: its refresh tokens stop working."""
    from carnet.authn.clients import ClientService

    with open_services(settings_of(ctx)) as services:
        done = ClientService(services.engine, services.settings).remove(client_id)
    if not done:
        raise fail(f"no client {client_id}")
    say(f"client {client_id} removed")


# -- operator tokens (`carnet token issue`) -------------------------------------------------------


def token_issue(
    ctx: typer.Context,
    operator: Annotated[str, typer.Option(help="Operator name (lower case); audited.")],
    scope: Annotated[
        list[str], typer.Option(help="system/ scope (repeat), e.g. 'system/*.rs'.")
    ] = ["system/*.rs"],  # noqa: B006
    minutes: Annotated[
        float | None, typer.Option(help="Lifetime (default: setting access_token_minutes).")
    ] = None,
) -> None:
    """Print a short-lived access token for operator:NAME (stdout: the token alone)."""
    from carnet.authn.operator_tokens import OperatorTokenError, issue_operator_token

    with open_services(settings_of(ctx)) as services:
        try:
            token, claims = issue_operator_token(
                services.crypto.token_signer(),
                services.settings,
                services.audit,
                operator,
                scope,
                minutes=minutes,
                source=f"cli:{getpass.getuser()}",
            )
        except OperatorTokenError as exc:
            raise fail(str(exc)) from None
    typer.echo(token)
    lifetime = claims["exp"] - claims["iat"]
    err.print(
        f"token for {claims['sub']} ({claims['scope']}), valid {lifetime} s",
        highlight=False,
        markup=False,
    )


def register(app: typer.Typer, *, accounts: typer.Typer) -> None:
    """Add the login-account commands to the ``carnet accounts`` group (made by the record domain,
    carnet/record/cli.py) and the `carnet clients` and `carnet token` groups."""
    accounts.command("add-person")(add_person)
    accounts.command("add-professional")(add_professional)
    accounts.command("add-operator")(add_operator)
    clients = typer.Typer(
        help="OAuth clients: SMART apps and backend services.", no_args_is_help=True
    )
    clients.command("add")(clients_add)
    clients.command("list")(clients_list)
    clients.command("remove")(clients_remove)
    app.add_typer(clients, name="clients")
    token = typer.Typer(help="Access tokens for operators' scripts.", no_args_is_help=True)
    token.command("issue")(token_issue)
    app.add_typer(token, name="token")
