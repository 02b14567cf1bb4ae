"""`carnet demo`: a synthetic French population, its identity register and ready-made accounts."""

from __future__ import annotations

from typing import Annotated

import typer

from carnet.cli.serve import run_server
from carnet.cli.shell import cli_context, console, open_services, progress_bar


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
            ctx=RequestContext.local_operator(),
        )
    console.print(
        f"demo population: {report.patients_loaded} patients loaded, "
        f"{report.patients_skipped} already present, {report.resources} resources written"
    )
    console.print(f"identity register: {registered} reference identities (INSi stand-in)")
    console.print(f"data directory: {settings.data_dir}")
    console.print("ready-made accounts (synthetic data, loopback demo):")
    for account in ready:
        console.print(f"  {account.role:<15} {account.login:<28} {account.detail}", soft_wrap=True)
    console.print("  operator        carnet token issue --operator demo --scope 'system/*.rs'")
    if serve_after:
        portal = f"http://{settings.host}:{settings.port}"
        console.print(
            f"portal: {portal}/ (patients sign in at {portal}/connexion with the login and "
            "password above, then the code of their authenticator app)"
        )
        console.print(
            f"open http://{settings.host}:{settings.port}/fhir/Patient?_count=10 "
            f"or http://{settings.host}:{settings.port}/fhir/metadata"
        )
        run_server(cli, host=None, port=None, workers=1)


def register(app: typer.Typer) -> None:
    """Add `carnet demo`."""
    app.command("demo")(demo)
