"""`carnet sovereignty`: where data, keys, backups, logs and notifications go; `--strict` checks
that every destination is declared inside the EEA (as `carnet serve --strict` does at start-up)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from carnet.cli.shell import fail, say, settings_of
from carnet.settings import Settings
from carnet.sovereignty.report import (
    DeclarationError,
    Destination,
    sovereignty_report,
    strict_refusal,
)


def checked_report(settings: Settings, *, strict: bool) -> list[Destination]:
    """The report, or the one error exit: an unreadable declaration, or under ``strict`` the first
    destination undeclared or outside the EEA (one line naming its setting, never its value)."""
    try:
        destinations = sovereignty_report(settings)
        refused = strict_refusal(settings) if strict else None
    except DeclarationError as exc:
        raise fail(f"invalid setting: {exc}") from None
    if refused is not None:
        raise fail(refused)
    return destinations


def sovereignty(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document, for machines.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Exit 1 when any destination is undeclared or outside the EEA."
        ),
    ] = False,
) -> None:
    """List every place data, keys, backups, logs and notifications go, with its jurisdiction."""
    destinations = checked_report(settings_of(ctx), strict=strict)
    if as_json:
        say(json.dumps({"destinations": [d.as_json() for d in destinations]}, indent=2))
        return
    rows = [("WHAT", "SETTING", "JURISDICTION", "EEA", "CERTIFICATIONS", "LOCATION")]
    rows += [
        (
            d.what,
            d.setting,
            d.jurisdiction or "undeclared",
            "yes" if d.in_eea else "no",
            ",".join(d.certifications) or "-",
            d.location,
        )
        for d in destinations
    ]
    # Plain aligned columns, never cut to the terminal's width: paths are long and must be whole.
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        say("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]))


def register(app: typer.Typer) -> None:
    """Add `carnet sovereignty`."""
    app.command("sovereignty")(sovereignty)
