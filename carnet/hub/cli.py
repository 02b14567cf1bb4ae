"""`carnet hub ...`: the research hub's operator and workspace commands.

Each command prints one clear line (ids and counts, never names or rows beyond the workspace's
own query) and exits non-zero on failure.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from carnet.cli.shell import console, fail, local_operator, open_services, settings_of

if TYPE_CHECKING:
    from carnet.app import Services
    from carnet.caller import RequestContext
    from carnet.hub.wiring import HubServices


def _operator() -> RequestContext:
    from carnet.caller import RequestContext

    return RequestContext.local_operator(actor=local_operator(), source="cli", purpose="research")


def _hub(services: Services) -> HubServices:
    if services.hub is None:
        raise fail("the hub's services are not built")
    return services.hub


def grant(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="Account (or client) id.")],
    role: Annotated[str, typer.Argument(help="researcher, reviewer or output_checker.")],
) -> None:
    """Grant a hub role to an account."""
    with open_services(settings_of(ctx)) as services:
        try:
            _hub(services).roles.grant(subject, role)
        except ValueError as exc:
            raise fail(str(exc)) from None
    console.print(f"{subject}: {role}", highlight=False)


def permits(ctx: typer.Context) -> None:
    """List the permits past draft: id, state, organisation's permit clock."""
    from carnet.db.instants import utc_now
    from carnet.hub.register import register_entry

    with open_services(settings_of(ctx)) as services:
        entries = [register_entry(p, utc_now()) for p in _hub(services).permits.all_permits()]
    for e in entries:
        console.print(
            f"{e['permit']} {e['status']} submitted {e['submitted']} decision due "
            f"{e['decisionDue']}{' OVERDUE' if e['decisionOverdue'] else ''}",
            highlight=False,
        )
    console.print(f"{len(entries)} permit(s)", highlight=False)


def extract_permit(
    ctx: typer.Context,
    permit: Annotated[str, typer.Argument(help="Permit id (active).")],
    engine: Annotated[str, typer.Option(help="duckdb or spark.")] = "duckdb",
) -> None:
    """Extract an active permit's data as the permit says (its spec), and record the extract."""
    from carnet.hub.errors import HubError

    if engine not in ("duckdb", "spark"):
        raise fail("--engine is duckdb or spark")
    try:
        omop: Any = import_module("carnet.hub.omop.service")
    except ImportError:
        raise fail("the extraction engine (carnet.hub.omop.service) is not installed") from None
    operator = _operator()
    with open_services(settings_of(ctx)) as services:
        hub = _hub(services)
        try:
            result = hub.extracts.extract(
                operator,
                permit,
                lambda spec: omop.extract(services, operator, spec),
                hub.extracts_dir,
                engine,  # type: ignore[arg-type]
            )
        except HubError as exc:
            raise fail(str(exc)) from None
    rows = sum(result.row_counts.values())
    console.print(
        f"{rows} row(s) extracted, hash {result.output_hash[:16]}, "
        f"{result.excluded_opted_out} opted-out person(s) excluded",
        highlight=False,
    )


def query(
    ctx: typer.Context,
    permit: Annotated[str, typer.Argument(help="Permit id (active).")],
    sql: Annotated[str, typer.Argument(help="One SELECT over the project's extract.")],
    member: Annotated[str, typer.Option(help="The team member's account id.")],
) -> None:
    """Run one read-only SELECT in the project's workspace, as a member of its team."""
    from carnet.caller import Kind, Principal, RequestContext
    from carnet.hub.errors import HubError

    principal = Principal(Kind.PERSON, member, patient_id=None)
    caller = RequestContext(principal, member, "cli", purpose="research")
    with open_services(settings_of(ctx)) as services:
        try:
            result = _hub(services).workspace.query(caller, permit, sql)
        except HubError as exc:
            raise fail(str(exc)) from None
    console.print("\t".join(result.columns), highlight=False)
    for row in result.rows:
        console.print("\t".join("" if v is None else str(v) for v in row), highlight=False)
    if result.truncated:
        console.print(f"(truncated at {len(result.rows)} rows)", highlight=False)


def expire(ctx: typer.Context) -> None:
    """Mark the permits past their expiry as expired (their workspaces close)."""
    with open_services(settings_of(ctx)) as services:
        count = _hub(services).permits.expire_due()
    console.print(f"{count} permit(s) expired", highlight=False)


def catalogue(
    ctx: typer.Context,
    omop: Annotated[
        Path | None,
        typer.Argument(help="An OMOP CDM 5.4 DuckDB file; without it, the record store itself."),
    ] = None,
) -> None:
    """Describe the dataset in the catalogue (HealthDCAT-AP), from the record store (read as
    the system caller hub-catalogue, audited) or from an OMOP database."""
    from datetime import date

    from carnet.hub.catalogue.from_store import store_statistics

    if omop is not None and not omop.is_file():
        raise fail(f"no such file: {omop.name}")
    with open_services(settings_of(ctx)) as services:
        if omop is None:
            stats = store_statistics(services, _operator(), date.today())
            described = _hub(services).catalogue.describe(stats)
        else:
            described = _hub(services).catalogue.refresh(omop, date.today())
    console.print(
        f"{described['id']}: {described['records']} record(s), "
        f"{described['individuals']} individual(s) (rounded)",
        highlight=False,
    )


def register(app: typer.Typer) -> typer.Typer:
    """Add the `carnet hub` group and return it (carnet/hub/omop/cli.py adds its commands)."""
    hub = typer.Typer(
        help="Research hub: roles, permits, extraction, the project's workspace.",
        no_args_is_help=True,
    )
    hub.command("grant")(grant)
    hub.command("permits")(permits)
    hub.command("extract-permit")(extract_permit)
    hub.command("query")(query)
    hub.command("expire")(expire)
    hub.command("catalogue")(catalogue)
    app.add_typer(hub, name="hub")
    return hub
