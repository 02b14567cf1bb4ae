"""`carnet clients add|list|remove` (OAuth clients: SMART apps and backend services) and
`carnet token issue` (a short-lived operator token). Output holds ids, never a secret twice: a
confidential client's secret is printed once, at registration."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from carnet.app import Services

clients_app = typer.Typer(
    help="OAuth clients: SMART apps and backend services.", no_args_is_help=True
)
token_app = typer.Typer(help="Access tokens for operators' scripts.", no_args_is_help=True)


def _say(message: str) -> None:
    from carnet.cli import console

    console.print(message, highlight=False, markup=False)


def _fail(message: str) -> typer.Exit:
    from carnet.cli import _fail as fail

    return fail(message)


def _open() -> Services:
    from carnet.cli import _services
    from carnet.settings import Settings

    services: Services = _services(Settings.from_env())
    return services


@clients_app.command("add")
def clients_add(
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
            raise _fail(f"cannot read the JWKS {jwks}: {type(exc).__name__}") from None
        if not isinstance(keys, dict):
            raise _fail("a JWKS file holds a JSON object")
    services = _open()
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
        raise _fail(str(exc)) from None
    finally:
        services.close()
    _say(f"client {client.client_id} registered ({client.kind.value})")
    if secret:
        _say(f"client secret (shown once, store it in the app's configuration): {secret}")


@clients_app.command("list")
def clients_list() -> None:
    """List registered clients: id, kind, allowed scopes, redirect URIs, JWKS URL."""
    from carnet.authn.clients import ClientService

    services = _open()
    try:
        found = ClientService(services.engine, services.settings).all()
    finally:
        services.close()
    if not found:
        _say("no client registered")
    for c in found:
        uris = ", ".join(c.redirect_uris) or "-"
        keys = f"  jwks: {c.jwks_url}" if c.jwks_url else ""
        _say(f"{c.client_id}  {c.kind.value}  scopes: {' '.join(c.scopes)}  redirect: {uris}{keys}")


@clients_app.command("remove")
def clients_remove(client_id: Annotated[str, typer.Argument(help="Client id.")]) -> None:
    """Remove a client: its refresh tokens stop working."""
    from carnet.authn.clients import ClientService

    services = _open()
    try:
        done = ClientService(services.engine, services.settings).remove(client_id)
    finally:
        services.close()
    if not done:
        raise _fail(f"no client {client_id}")
    _say(f"client {client_id} removed")


@token_app.command("issue")
def token_issue(
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
    from carnet.cli import err

    services = _open()
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
        raise _fail(str(exc)) from None
    finally:
        services.close()
    typer.echo(token)
    lifetime = claims["exp"] - claims["iat"]
    err.print(
        f"token for {claims['sub']} ({claims['scope']}), valid {lifetime} s",
        highlight=False,
        markup=False,
    )
