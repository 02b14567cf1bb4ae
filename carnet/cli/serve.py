"""`carnet serve`: the HTTP server (uvicorn running carnet.asgi)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from carnet.cli.shell import CliContext, cli_context, console, fail, open_services
from carnet.settings import Settings
from carnet.sovereignty.report import SovereigntyRefusedError, refuse_unless_sovereign


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default: setting host).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: setting port).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL deployments).")] = 1,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse to start when any destination is undeclared or outside the EEA "
            "(setting sovereignty_strict; see carnet sovereignty).",
        ),
    ] = False,
) -> None:
    """Serve the FHIR API (loopback only until authentication is configured)."""
    cli = strict_context(cli_context(ctx), strict=strict)
    try:  # before anything opens; the app (create_app) checks the same in each worker
        refuse_unless_sovereign(cli.settings)
    except SovereigntyRefusedError as exc:
        raise fail(str(exc)) from None
    run_server(cli, host=host, port=port, workers=workers)


def strict_context(cli: CliContext, *, strict: bool) -> CliContext:
    """The context with ``sovereignty_strict`` on when ``--strict`` asks for it, exported to the
    environment that carnet.asgi reads in each worker."""
    if strict and not cli.settings.sovereignty_strict:
        return cli.exported(sovereignty_strict="true")
    return cli


def run_server(cli: CliContext, *, host: str | None, port: int | None, workers: int) -> None:
    """Migrate once, then serve carnet.asgi with uvicorn until interrupted."""
    import uvicorn

    from carnet.log_safety import uvicorn_log_config

    # The app (carnet.asgi, in each worker) reads its settings from the environment: the listen
    # address chosen here must reach it, since an unset issuer_url is derived from it.
    changes = {}
    if host:
        changes["host"] = host
    if port:
        changes["port"] = str(port)
    settings = cli.exported(**changes).settings
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise fail("--workers > 1 needs PostgreSQL (set CARNET_DATABASE_URL)")
    with open_services(settings):  # migrate once, before workers start
        pass
    console.print(
        f"Carnet FHIR API on http://{host or settings.host}:{port or settings.port}/fhir/metadata"
    )
    uvicorn.run(
        "carnet.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="warning",
        access_log=False,
        **forwarding_options(settings),
        server_header=False,  # no banner naming the server software and version
        log_config=uvicorn_log_config(),  # tracebacks reduced to their type: no SQL, no values
    )


def forwarding_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy-header options from the ``trusted_proxies`` setting. uvicorn alone believes
    X-Forwarded-For from any loopback peer, so a local client could forge its address (the audit's
    source, the rate limits' key): headers are read only when proxies are configured, and only
    from them."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


def register(app: typer.Typer) -> None:
    """Add `carnet serve`."""
    app.command("serve")(serve)
