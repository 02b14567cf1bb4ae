"""`carnet accounts ...`: personal spaces from the insured-person register to crypto-shredding.

Each command prints one clear line (ids and counts, never names) and exits non-zero on failure.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carnet.cli.shell import console, fail, local_operator, open_services, settings_of

if TYPE_CHECKING:
    from carnet.caller import RequestContext


def _as_operator() -> RequestContext:
    from carnet.caller import RequestContext

    return RequestContext.local_operator(actor=local_operator(), source="cli", purpose="operations")


def _say(message: str) -> None:
    console.print(message, highlight=False)


def provision(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Register extract: CSV, or a FHIR Bundle (JSON).")],
) -> None:
    """Create a space (pending, objection window open) for each insured person of FILE."""
    from carnet.fhir.errors import FhirError
    from carnet.record.register import RegisterError, read_register

    try:
        people = read_register(path, today=date.today())
    except RegisterError as exc:
        raise fail(str(exc)) from None
    with open_services(settings_of(ctx)) as services:
        try:
            report = services.record.provision(people, ctx=_as_operator())
        except FhirError as exc:
            raise fail(f"{exc}; nothing was provisioned") from None
    _say(
        f"{report.created} space(s) created, {report.known} already known, "
        f"{report.objected} objected, {report.declined} refused or closed earlier; "
        f"{report.representatives} representative(s), {report.notifications} notification(s) queued"
    )


def object_(
    ctx: typer.Context, patient: Annotated[str, typer.Argument(help="Patient id.")]
) -> None:
    """The person objects: a pending space is refused, an open one closed (data kept, then shredded)."""
    from carnet.fhir.errors import FhirError

    with open_services(settings_of(ctx)) as services:
        try:
            state = services.record.object(patient, ctx=_as_operator())
        except FhirError as exc:
            raise fail(str(exc)) from None
    _say(f"space of Patient/{patient} {state}")


def close(
    ctx: typer.Context,
    patient: Annotated[str, typer.Argument(help="Patient id.")],
    reason: Annotated[str, typer.Option(help="request, death, operator or objection.")] = "request",
) -> None:
    """Close a space: its data is kept until the retention period ends, then crypto-shredded."""
    from carnet.fhir.errors import FhirError

    with open_services(settings_of(ctx)) as services:
        try:
            state = services.record.close(patient, reason=reason, ctx=_as_operator())
            space = services.record.space(patient)
        except FhirError as exc:
            raise fail(str(exc)) from None
    until = space.retention_until if space else "?"
    _say(f"space of Patient/{patient} {state}; data kept until {until}")


def reopen(ctx: typer.Context, patient: Annotated[str, typer.Argument(help="Patient id.")]) -> None:
    """Reopen a refused or closed space before its retention ends (its data is still there)."""
    from carnet.fhir.errors import FhirError

    with open_services(settings_of(ctx)) as services:
        try:
            state = services.record.reopen(patient, ctx=_as_operator())
        except FhirError as exc:
            raise fail(str(exc)) from None
    _say(f"space of Patient/{patient} {state} again")


def sweep(
    ctx: typer.Context,
    outbox: Annotated[
        Path | None,
        typer.Option(
            help="NDJSON file notifications are delivered to (default <data_dir>/outbox)."
        ),
    ] = None,
) -> None:
    """Queue the alerts patients chose (emergency access always), open spaces whose objection
    window passed, shred those whose retention ended, notify."""
    from carnet.record.alerts import AlertService
    from carnet.record.notifications import FileChannel

    with open_services(settings_of(ctx)) as services:
        alerts = AlertService(services.engine, services.audit, services.controls).sweep()
        try:
            target = outbox or services.settings.data_dir / "outbox" / "notifications.ndjson"
            report = services.record.sweep(FileChannel(target), ctx=_as_operator())
        except OSError as exc:
            raise fail(f"cannot deliver notifications: {type(exc).__name__}") from None
    _say(
        f"{len(report.opened)} space(s) opened, {len(report.shredded)} crypto-shredded, "
        f"{report.delivered} notification(s) delivered to {target} ({alerts} alert(s) queued)"
    )


def show(ctx: typer.Context, patient: Annotated[str, typer.Argument(help="Patient id.")]) -> None:
    """A space's state, dates and current representatives."""
    with open_services(settings_of(ctx)) as services:
        space = services.record.space(patient)
    if space is None:
        raise fail(f"Patient/{patient} has no personal space")
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


def represent(
    ctx: typer.Context,
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
        raise fail("--until must be a YYYY-MM-DD date") from None
    with open_services(settings_of(ctx)) as services:
        try:
            if end:
                count = services.record.representatives.end(
                    patient, representative, ctx=_as_operator()
                )
                message = f"{count} representation(s) of Patient/{patient} ended"
            else:
                added = services.record.representatives.add(
                    patient, representative, kind, until=ends, ctx=_as_operator()
                )
                message = (
                    f"Patient/{representative} now represents Patient/{patient} ({kind})"
                    if added
                    else f"Patient/{representative} already represents Patient/{patient} ({kind})"
                )
        except FhirError as exc:
            raise fail(str(exc)) from None
    _say(message)


def register(app: typer.Typer) -> typer.Typer:
    """Add the `carnet accounts` group (personal spaces) and return it: the login-account commands
    (carnet/authn/cli.py) join it."""
    accounts = typer.Typer(
        help="Personal spaces (provisioning, objection, closure, representatives) and login accounts.",
        no_args_is_help=True,
    )
    accounts.command("provision")(provision)
    accounts.command("object")(object_)
    accounts.command("close")(close)
    accounts.command("reopen")(reopen)
    accounts.command("sweep")(sweep)
    accounts.command("show")(show)
    accounts.command("represent")(represent)
    app.add_typer(accounts, name="accounts")
    return accounts
