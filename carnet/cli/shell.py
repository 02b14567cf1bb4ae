"""What every `carnet` command shares: the consoles, the one error exit, the settings the entry point
read, and the services a command opens and closes.

Domain command modules (carnet/<domain>/cli.py) import this module, never the root app
(carnet/cli/main.py), so that no command module depends on another.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from carnet.db.storage_faults import StorageFault, storage_fault
from carnet.settings import Settings

if TYPE_CHECKING:
    from carnet.app import Services

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """The one error exit: print ``error: MESSAGE`` on stderr; raise the returned exit (code 1)."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=1)


def say(message: str) -> None:
    """Print one line as it is: ids may hold characters Rich would read as markup."""
    console.print(message, highlight=False, markup=False)


def progress_bar() -> Progress:
    """The progress display of long commands (demo, import)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def local_operator() -> str:
    """The actor name of the operator at this terminal, as the audit records it."""
    return f"operator:{getpass.getuser()}"


@dataclass(frozen=True)
class CliContext:
    """What the entry point read once (the environment and the settings built from it), handed to
    every command as the Typer context object."""

    environment: Mapping[str, str]
    settings: Settings

    @classmethod
    def from_environment(cls) -> CliContext:
        environment = dict(os.environ)
        return cls(environment, Settings.from_env(environment))

    def exported(self, **changes: str) -> CliContext:
        """The context with settings changed by a command's options (``serve --host``), also set
        in the process environment: the server's workers (carnet.asgi) read their settings from
        it. Derived settings (issuer_url from the listen address) follow the change."""
        variables = {f"CARNET_{name.upper()}": value for name, value in changes.items()}
        os.environ.update(variables)
        environment = {**self.environment, **variables}
        return CliContext(environment, Settings.from_env(environment))


def read_settings(ctx: typer.Context) -> None:
    """The root callback: read the environment once, before any command runs."""
    if ctx.resilient_parsing:  # shell completion: nothing runs
        return
    try:
        ctx.obj = CliContext.from_environment()
    except ValueError as exc:
        raise fail(f"invalid setting: {exc}") from None


def cli_context(ctx: typer.Context) -> CliContext:
    """The context the root callback stored (a command run without it is a programming error)."""
    found = ctx.find_object(CliContext)
    if found is None:
        raise RuntimeError("carnet commands run under the root app (carnet.cli.main)")
    return found


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the entry point read, for a command."""
    return cli_context(ctx).settings


@contextmanager
def open_services(settings: Settings) -> Iterator[Services]:
    """Open Carnet's services (applying migrations) for one command and close them after it,
    however it ends. Failing to open is one clear line, never a traceback with data in it."""
    # Imported when a command runs, not when the CLI loads: `carnet --help` stays quick.
    from carnet.app import build_services

    try:
        services = build_services(settings)
    except Exception as exc:  # noqa: BLE001 - one clear line, never a traceback with data in it
        fault = storage_fault(exc, *settings_places(settings))
        if fault is not None:
            raise fail(storage_line(fault)) from None
        raise fail(f"cannot open Carnet ({type(exc).__name__}: {exc})") from None
    try:
        yield services
    finally:
        services.close()


def settings_places(settings: Settings) -> tuple[Path, ...]:
    """The folders a store on these settings writes (its SQLite database's, the data dir)."""
    database = settings.database_url.partition(":///")[2]
    if settings.database_url.startswith("sqlite") and database and database != ":memory:":
        return (Path(database).parent, settings.data_dir)
    return (settings.data_dir,)


def storage_line(fault: StorageFault) -> str:
    """The one line a command ends with on a full or read-only disk."""
    return (
        f"{fault.reason}: the write in progress was not made, and earlier ones are kept; "
        "free space or make it writable, then run the command again (an import resumes)"
    )


def storage_failure_line(exc: BaseException) -> str | None:
    """The one line for a command that ended on a full or read-only disk, or None when ``exc``
    is something else. The places to look at are read from the environment again: the command
    may have failed before or after the root callback read it."""
    try:
        places = settings_places(Settings.from_env())
    except ValueError:  # unreadable settings were reported when the command started
        places = ()
    fault = storage_fault(exc, *places)
    return None if fault is None else storage_line(fault)
