"""`carnet accounts ...`: personal spaces from the insured-person register to crypto-shredding.

Each command prints one clear line (ids and counts, never names) and exits non-zero on failure.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from carnet.app import Services
    from carnet.caller import RequestContext

accounts_app = typer.Typer(
    help="Personal spaces (provisioning, objection, closure, representatives) and login accounts.",
    no_args_is_help=True,
)


def _open() -> Services:
    from carnet.cli import _services
    from carnet.settings import Settings

    services: Services = _services(Settings.from_env())
    return services


def _ctx() -> RequestContext:
    import getpass

    from carnet.caller import RequestContext

    return RequestContext.local_operator(
        actor=f"operator:{getpass.getuser()}", source="cli", purpose="operations"
    )


def _fail(message: str) -> typer.Exit:
    from carnet.cli import _fail as fail

    return fail(message)


def _say(message: str) -> None:
    from carnet.cli import console

    console.print(message, highlight=False)


@accounts_app.command("provision")
def provision(
    path: Annotated[Path, typer.Argument(help="Register extract: CSV, or a FHIR Bundle (JSON).")],
) -> None:
    """Create a space (pending, objection window open) for each insured person of FILE."""
    from carnet.fhir.errors import FhirError
    from carnet.record.register import RegisterError, read_register

    try:
        people = read_register(path, today=date.today())
    except RegisterError as exc:
        raise _fail(str(exc)) from None
    services = _open()
    try:
        report = services.record.provision(people, ctx=_ctx())
    except FhirError as exc:
        raise _fail(f"{exc}; nothing was provisioned") from None
    finally:
        services.close()
    _say(
        f"{report.created} space(s) created, {report.known} already known, "
        f"{report.objected} objected, {report.declined} refused or closed earlier; "
        f"{report.representatives} representative(s), {report.notifications} notification(s) queued"
    )


@accounts_app.command("object")
def object_(patient: Annotated[str, typer.Argument(help="Patient id.")]) -> None:
    """The person objects: a pending space is refused, an open one closed (data kept, then shredded)."""
    from carnet.fhir.errors import FhirError

    services = _open()
    try:
        state = services.record.object(patient, ctx=_ctx())
    except FhirError as exc:
        raise _fail(str(exc)) from None
    finally:
        services.close()
    _say(f"space of Patient/{patient} {state}")


@accounts_app.command("close")
def close(
    patient: Annotated[str, typer.Argument(help="Patient id.")],
    reason: Annotated[str, typer.Option(help="request, death, operator or objection.")] = "request",
) -> None:
    """Close a space: its data is kept until the retention period ends, then crypto-shredded."""
    from carnet.fhir.errors import FhirError

    services = _open()
    try:
        state = services.record.close(patient, reason=reason, ctx=_ctx())
        space = services.record.space(patient)
    except FhirError as exc:
        raise _fail(str(exc)) from None
    finally:
        services.close()
    until = space.retention_until if space else "?"
    _say(f"space of Patient/{patient} {state}; data kept until {until}")


@accounts_app.command("reopen")
def reopen(patient: Annotated[str, typer.Argument(help="Patient id.")]) -> None:
    """Reopen a refused or closed space before its retention ends (its data is still there)."""
    from carnet.fhir.errors import FhirError

    services = _open()
    try:
        state = services.record.reopen(patient, ctx=_ctx())
    except FhirError as exc:
        raise _fail(str(exc)) from None
    finally:
        services.close()
    _say(f"space of Patient/{patient} {state} again")


@accounts_app.command("sweep")
def sweep(
    outbox: Annotated[
        Path | None,
        typer.Option(
            help="NDJSON file notifications are delivered to (default <data_dir>/outbox)."
        ),
    ] = None,
) -> None:
    """Open spaces whose objection window passed, shred those whose retention ended, notify."""
    from carnet.record.notifications import FileChannel

    services = _open()
    try:
        target = outbox or services.settings.data_dir / "outbox" / "notifications.ndjson"
        report = services.record.sweep(FileChannel(target), ctx=_ctx())
    except OSError as exc:
        raise _fail(f"cannot deliver notifications: {type(exc).__name__}") from None
    finally:
        services.close()
    _say(
        f"{len(report.opened)} space(s) opened, {len(report.shredded)} crypto-shredded, "
        f"{report.delivered} notification(s) delivered to {target}"
    )


@accounts_app.command("show")
def show(patient: Annotated[str, typer.Argument(help="Patient id.")]) -> None:
    """A space's state, dates and current representatives."""
    services = _open()
    try:
        space = services.record.space(patient)
    finally:
        services.close()
    if space is None:
        raise _fail(f"Patient/{patient} has no personal space")
    _say(
        f"Patient/{space.patient_id} {space.state} (provisioned {space.provisioned_at}, "
        f"objection until {space.objection_deadline or '-'}, "
        f"retention until {space.retention_until or '-'})"
    )
    for rep in space.representatives:
        _say(
            f"  represented by Patient/{rep['patient']} ({rep['kind']}, until {rep['until'] or '-'})"
        )
    for pid in space.represented:
        _say(f"  represents Patient/{pid}")


@accounts_app.command("represent")
def represent(
    patient: Annotated[str, typer.Argument(help="Patient id of the person represented.")],
    representative: Annotated[str, typer.Argument(help="Patient id of the representative.")],
    kind: Annotated[str, typer.Option(help="parent, guardian or curator.")] = "parent",
    until: Annotated[
        str | None, typer.Option(help="End of a guardianship (YYYY-MM-DD); parents: 18th birthday.")
    ] = None,
    end: Annotated[bool, typer.Option("--end", help="End this representation now.")] = False,
) -> None:
    """Declare (or --end) a legal representative: a parent of a minor, a guardian or curator."""
    from carnet.fhir.errors import FhirError
    from carnet.record.dates import paris_midnight

    try:
        ends = paris_midnight(date.fromisoformat(until)) if until else None
    except ValueError:
        raise _fail("--until must be a YYYY-MM-DD date") from None
    services = _open()
    try:
        if end:
            count = services.record.end_representative(patient, representative, ctx=_ctx())
            message = f"{count} representation(s) of Patient/{patient} ended"
        else:
            added = services.record.add_representative(
                patient, representative, kind, until=ends, ctx=_ctx()
            )
            message = (
                f"Patient/{representative} now represents Patient/{patient} ({kind})"
                if added
                else f"Patient/{representative} already represents Patient/{patient} ({kind})"
            )
    except FhirError as exc:
        raise _fail(str(exc)) from None
    finally:
        services.close()
    _say(message)
