"""`carnet keys status`: where the master key lives and how many data keys exist; `carnet keys
custody`: every key, where it lives, who can use it, when it last changed."""

from __future__ import annotations

import typer

from carnet.cli.shell import console, open_services, say, settings_of


def keys_status(ctx: typer.Context) -> None:
    """Where the master key lives, its fingerprint, and how many data keys exist."""
    settings = settings_of(ctx)
    with open_services(settings) as services:
        status = services.crypto.status(services.engine, settings)
    console.print(f"key source      {status.source}")
    console.print(f"location        {status.location} (mode {status.file_mode})")
    console.print(f"master key id   {status.master_key_id}")
    console.print(
        f"data keys       {status.data_keys_active} active, {status.data_keys_destroyed} destroyed"
    )


def keys_custody(ctx: typer.Context) -> None:
    """Every key Carnet uses: where it lives, who can use it, when it last changed."""
    settings = settings_of(ctx)
    with open_services(settings) as services:
        rows = services.crypto.custody(services.engine, settings)
    for row in rows:
        say(f"{row.key} | {row.where} | {row.who} | {row.changed}")


def register(app: typer.Typer) -> None:
    """Add the `carnet keys` group."""
    keys = typer.Typer(help="Master key and data keys.", no_args_is_help=True)
    keys.command("status")(keys_status)
    keys.command("custody")(keys_custody)
    app.add_typer(keys, name="keys")
