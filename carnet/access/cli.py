"""`carnet accounts add-person|add-professional|add-operator`: login accounts, made by an operator.

The commands join the ``accounts`` group (carnet/record/cli.py) through ``register``. Passwords are
prompted (hidden, typed twice), never taken from the command line; the TOTP enrolment URI is
printed once, for the person to scan, and cannot be shown again. Output holds ids, never the login.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from carnet.access.accounts import AccountService
    from carnet.app import Services


def _say(message: str) -> None:
    from carnet.cli import console

    console.print(message, highlight=False, markup=False)


def _fail(message: str) -> typer.Exit:
    from carnet.cli import _fail as fail

    return fail(message)


def _open() -> tuple[Services, AccountService]:
    from carnet.access.accounts import AccountService
    from carnet.cli import _services
    from carnet.settings import Settings

    services: Services = _services(Settings.from_env())
    accounts = getattr(services, "accounts", None)
    if not isinstance(accounts, AccountService):
        accounts = AccountService(
            services.engine, services.crypto, services.settings, audit=services.audit
        )
    return services, accounts


def _patient_exists(services: Services, patient_id: str) -> bool:
    import getpass

    from carnet.caller import RequestContext
    from carnet.fhir.errors import FhirError

    ctx = RequestContext.local_operator(
        actor=f"operator:{getpass.getuser()}", source="cli", purpose="operations"
    )
    try:
        services.fhir.read("Patient", patient_id, ctx=ctx)
    except FhirError:
        return False
    return True


def _create(kind: str, make: Callable[[Services, AccountService], str], totp: bool) -> None:
    """Run ``make(services, accounts) -> account id``, enrol TOTP if asked, print one line each."""
    from carnet.access.accounts import AccountError
    from carnet.access.passwords import PasswordPolicyError

    services, accounts = _open()
    try:
        account_id = make(services, accounts)
        uri = accounts.enroll_totp(account_id) if totp else None
    except (AccountError, PasswordPolicyError) as exc:
        raise _fail(str(exc)) from None
    finally:
        services.close()
    _say(f"account {account_id} created ({kind})")
    if uri:
        _say(f"second factor (scan once in an authenticator app, not shown again): {uri}")


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
    login: Annotated[str, typer.Argument(help="The person's login (e-mail address).")],
    patient: Annotated[str, typer.Option(help="Id of the person's own Patient resource.")],
    password: PasswordOption,
    totp: TotpOption = True,
) -> None:
    """Create a person's login account for their record, with a TOTP second factor."""

    def make(services: Services, accounts: AccountService) -> str:
        if not _patient_exists(services, patient):
            raise _fail(f"no Patient/{patient}")
        return accounts.create_person(login, password, patient)

    _create("person", make, totp)


def add_professional(
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

    _create(f"professional:{profession}", make, totp and not oidc_only)


def add_operator(
    login: Annotated[str, typer.Argument(help="The operator's login.")],
    password: PasswordOption,
    totp: TotpOption = True,
) -> None:
    """Create an operator's account (system/*.* scopes), with a TOTP second factor."""

    def make(_services: Services, accounts: AccountService) -> str:
        return accounts.create_operator(login, password)

    _create("operator", make, totp)


def register(group: typer.Typer) -> None:
    """Add the account-creation commands to the ``carnet accounts`` group."""
    group.command("add-person")(add_person)
    group.command("add-professional")(add_professional)
    group.command("add-operator")(add_operator)
