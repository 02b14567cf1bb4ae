"""`carnet keys status`: where the master key lives, its wrapping-key versions and how many keys
each wraps, when keys last rotated; `carnet keys rotate`: a new wrapping key, every data key
rewrapped online (or `--pseudonyms`: the research projects due re-keyed); `carnet keys retire`;
`carnet keys schedule`; `carnet keys custody`: every key, where it lives, who can use it, when it
last changed."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from carnet.audit.events import Actor, build_event
from carnet.cli.shell import console, fail, local_operator, open_services, say, settings_of
from carnet.crypto.keyring import KeyringError
from carnet.db.engine import writing

if TYPE_CHECKING:
    from carnet.app import Services


def _audit(services: Services, action: str, outcome: int = 200) -> None:
    """Key operations, done or refused, are audited as the operator's (no key material)."""
    actor = Actor(actor=local_operator(), source="cli", purpose="administration")
    services.audit.append([build_event(actor, action, None, outcome, [])])


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "never"


def keys_status(ctx: typer.Context) -> None:
    """Where the master key lives, its wrapping-key versions and when keys last rotated."""
    settings = settings_of(ctx)
    with open_services(settings) as services:
        status = services.crypto.status(services.engine, settings)
    console.print(f"key source      {status.source}")
    console.print(f"location        {status.location} (mode {status.file_mode})")
    console.print(f"master key id   {status.master_key_id}")
    console.print(
        f"data keys       {status.data_keys_active} active, {status.data_keys_destroyed} destroyed"
    )
    say(f"wrapping key    {status.wrapping_key_id} (current)")
    for version in status.versions:
        state = "retired" if version.retired else "usable"
        say(
            f"  v{version.version if version.version is not None else '?'} {version.key_id} "
            f"{state}: {version.data_keys} data keys, {version.project_keys} project keys"
        )
    say(f"last rotation   {_when(status.last_rotation)}")
    say(
        f"pseudonym keys  last re-keying {_when(status.last_pseudonym_rekeying)}, "
        f"{len(status.pseudonyms_due)} projects due"
    )


def keys_rotate(
    ctx: typer.Context,
    pseudonyms: Annotated[
        bool,
        typer.Option("--pseudonyms", help="Re-key the research projects whose period is past."),
    ] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Keys per transaction.")] = 500,
) -> None:
    """A new wrapping key; every data key rewrapped under it, online (bodies untouched).
    Resumes an interrupted rotation. The derivation root (blind indexes) never changes."""
    settings = settings_of(ctx)
    with open_services(settings) as services:
        if pseudonyms:
            done = services.crypto.rekey_due_pseudonyms(services.engine)
            _audit(services, "pseudonym-rekey")
            for project, generation in done:
                say(f"project {project} re-keyed: generation {generation}")
            say(f"{len(done)} projects re-keyed")
            return
        rotation = services.crypto.rotation(services.engine, settings)
        try:
            report = rotation.rotate(batch=batch)
        except KeyringError as exc:
            _audit(services, "key-rotate", 409)
            raise fail(str(exc)) from None
        _audit(services, "key-rotate")
    say(
        f"{'resumed: ' if report.resumed else ''}wrapping key v{report.version} "
        f"{report.target_key_id}: {report.data_keys} data keys and {report.project_keys} project "
        f"keys rewrapped in {report.batches} batches"
        f"{', ID-token key rewrapped' if report.rsa_key_rewrapped else ''}"
    )


def keys_retire(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="The wrapping-key version to retire.")],
) -> None:
    """Retire an old wrapping-key version once a rotation has moved every key off it."""
    settings = settings_of(ctx)
    with open_services(settings) as services:
        try:
            services.crypto.rotation(services.engine, settings).retire(version)
        except KeyringError as exc:
            _audit(services, "key-retire", 409)
            raise fail(str(exc)) from None
        _audit(services, "key-retire")
    say(f"wrapping key v{version} retired")


def keys_schedule(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="The research project's id.")],
    every: Annotated[
        int | None,
        typer.Option("--every", min=1, help="Re-key every N days (omit: on demand only)."),
    ] = None,
) -> None:
    """Set how often a research project's pseudonym key is re-keyed."""
    settings = settings_of(ctx)
    with open_services(settings) as services:
        with writing(services.engine) as conn:
            services.crypto.project_keys.schedule(conn, project, every)
        _audit(services, "pseudonym-schedule")
    say(
        f"project {project}: re-keyed every {every} days"
        if every
        else f"project {project}: re-keyed on demand"
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
    keys = typer.Typer(help="Master key, data keys and their rotation.", no_args_is_help=True)
    keys.command("status")(keys_status)
    keys.command("rotate")(keys_rotate)
    keys.command("retire")(keys_retire)
    keys.command("schedule")(keys_schedule)
    keys.command("custody")(keys_custody)
    app.add_typer(keys, name="keys")
