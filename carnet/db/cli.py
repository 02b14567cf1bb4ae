"""`carnet migrate`: the database schema brought up to date."""

from __future__ import annotations

import typer

from carnet.cli.shell import console, open_services, settings_of


def migrate(ctx: typer.Context) -> None:
    """Apply database migrations (also done at every start)."""
    with open_services(settings_of(ctx)):  # opening the services applies the migrations
        pass
    console.print("schema is up to date")


def register(app: typer.Typer) -> None:
    """Add `carnet migrate`."""
    app.command("migrate")(migrate)
