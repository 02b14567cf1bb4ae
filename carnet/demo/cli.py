"""`carnet demo`: a synthetic French population, its identity register and ready-made accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from carnet.cli.serve import run_server
from carnet.cli.shell import cli_context, console, fail, open_services, progress_bar

if TYPE_CHECKING:
    from carnet.demo.accounts import DemoAccount


def demo(
    ctx: typer.Context,
    patients: Annotated[int, typer.Option(help="Synthetic patients to load.")] = 200,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server after loading.")
    ] = True,
) -> None:
    """Load a synthetic French population (idempotent) and its reference identity register, then
    serve."""
    from carnet.caller import RequestContext
    from carnet.db.maintenance import analyze
    from carnet.demo.accounts import create_demo_accounts
    from carnet.demo.register import load_demo_register
    from carnet.demo.service import load_demo

    cli = cli_context(ctx)
    # The demo's professionals log in at the development identity provider (unless told otherwise);
    # exported so that the server started below (carnet.asgi) sees it too.
    if "CARNET_DEV_IDP" not in cli.environment:
        cli = cli.exported(dev_idp="true")
    settings = cli.settings
    with open_services(settings) as services:
        # The register first: the Patients loaded next are matched against it.
        registered = load_demo_register(services.identity, patients)
        with progress_bar() as progress:
            task = progress.add_task("synthetic patients", total=patients)
            report = load_demo(
                services.fhir,
                patients,
                ctx=RequestContext.local_operator(),
                progress=lambda: progress.advance(task),
            )
        analyze(services.engine)  # fresh planner statistics after a bulk load
        ready = create_demo_accounts(
            services.fhir,
            services.accounts,
            services.clients,
            services.controls,
            services.record,
            issuer_url=settings.issuer_url,
            roles=services.hub.roles if services.hub is not None else None,
            ctx=RequestContext.local_operator(),
        )
    console.print(
        f"demo population: {report.patients_loaded} patients loaded, "
        f"{report.patients_skipped} already present, {report.resources} resources written"
    )
    console.print(f"identity register: {registered} reference identities (INSi stand-in)")
    console.print(f"data directory: {settings.data_dir}")
    print_portal_and_logins(settings.issuer_url, ready)
    if serve_after:
        console.print(f"FHIR API: {settings.issuer_url}/fhir/metadata", soft_wrap=True)
        run_server(cli, host=None, port=None, workers=1)


def print_portal_and_logins(portal: str, ready: list[DemoAccount]) -> None:
    """The portal's address and each demo login: where to sign in, with what."""
    console.print(f"portal: {portal}/", soft_wrap=True)
    console.print("ready-made accounts (synthetic people, loopback demo):")
    for account in ready:
        console.print(f"  {account.role:<15} {account.login:<28} {account.detail}", soft_wrap=True)
    console.print("  operator        carnet token issue --operator demo --scope 'system/*.rs'")


def demo_code(
    secret: Annotated[str, typer.Argument(help="The TOTP secret `carnet demo` printed.")],
) -> None:
    """Print the current second-factor code of a demo account (no authenticator app needed)."""
    from carnet.demo.code import current_code

    try:
        code = current_code(secret)
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(code, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `carnet demo` and `carnet demo-code`."""
    app.command("demo")(demo)
    app.command("demo-code")(demo_code)
