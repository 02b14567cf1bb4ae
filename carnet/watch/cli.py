"""`carnet watch scan|alerts|show|close|flag|unflag|grant|revoke`: abnormal-access detection, for the
operator on this machine (the CLI acts as the security officer; every command is audited)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from carnet.caller import RequestContext
from carnet.cli.shell import console, fail, open_services, settings_of
from carnet.watch.models import FLAGS, OUTCOMES

if TYPE_CHECKING:  # the service (scikit-learn, the app) loads when a command runs
    from carnet.watch.service import WatchService

AS_CLI = RequestContext.local_operator(actor="operator:cli", source="cli", purpose="security")


@contextmanager
def _watch(ctx: typer.Context) -> Iterator[WatchService]:
    from carnet.watch.wiring import build

    with open_services(settings_of(ctx)) as s:
        yield build(s.settings, s.engine, s.fhir, s.audit, s.crypto.blind)


def _run(ctx: typer.Context, step: Callable[[WatchService], Any]) -> Any:
    from carnet.watch.service import WatchError

    with _watch(ctx) as watch:
        try:
            return step(watch)
        except WatchError as err:
            raise fail(str(err)) from None


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def scan(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(help="Days scored, today included (1 to 31).")] = 1,
) -> None:
    """Score the last days' access and queue the alerts (within the daily budget)."""
    report = _run(ctx, lambda w: w.scan(AS_CLI, days=days))
    _say(
        f"scanned {', '.join(report.days)}: {report.accesses} accesses, {report.episodes} "
        f"episodes, {report.unexplained} unexplained; {report.new_alerts} new alert(s), "
        f"{report.updated_alerts} updated"
    )


def alerts(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    include_closed: Annotated[bool, typer.Option("--all", help="Closed alerts too.")] = False,
) -> None:
    """The security officer's queue, best first: ids, reasons and counts, never names."""
    found = _run(ctx, lambda w: w.alerts(AS_CLI, open_only=not include_closed))
    if as_json:
        console.print_json(json.dumps({"alerts": found}))
        return
    if not found:
        _say("no open alert")
    for a in found:
        _say(
            f"{a['id']}  {a['day']}  {a['actor']:<36}  score {a['score']:.2f}  "
            f"{','.join(a['reasons'])}  records:{len(a['patients'])}  "
            f"unexplained:{a['unexplained']}  {a['status']}"
            + (f" ({a['outcome']})" if a["outcome"] else "")
        )


def show(ctx: typer.Context, alert_id: Annotated[str, typer.Argument(help="The alert.")]) -> None:
    """One alert as JSON: its records and the audit events behind it."""
    found = _run(ctx, lambda w: w.alert(AS_CLI, alert_id))
    console.print_json(json.dumps(found))


def close(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="The alert.")],
    reason: Annotated[str, typer.Option(help=f"The outcome: {', '.join(OUTCOMES)}.")],
) -> None:
    """Close an alert; `confirmed` tells the patients who chose alerts."""
    found = _run(ctx, lambda w: w.close(AS_CLI, alert_id, reason))
    _say(f"alert {found['id']} closed: {found['outcome']}")


def flag(
    ctx: typer.Context,
    patient_id: Annotated[str, typer.Argument(help="The patient's record.")],
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(FLAGS)}.")],
) -> None:
    """Put a record on the flag list (a VIP, a member of staff)."""
    _run(ctx, lambda w: w.flag(AS_CLI, patient_id, kind))
    _say(f"{patient_id} flagged {kind}")


def unflag(
    ctx: typer.Context,
    patient_id: Annotated[str, typer.Argument(help="The patient's record.")],
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(FLAGS)}.")],
) -> None:
    """Take a record off the flag list."""
    _run(ctx, lambda w: w.flag(AS_CLI, patient_id, kind, on=False))
    _say(f"{patient_id} no longer flagged {kind}")


def grant(
    ctx: typer.Context, account: Annotated[str, typer.Argument(help="An operator account id.")]
) -> None:
    """Give an operator account the security-officer role (the portal's alert queue)."""
    _run(ctx, lambda w: w.grant(AS_CLI, account))
    _say(f"{account} is a security officer")


def revoke(
    ctx: typer.Context, account: Annotated[str, typer.Argument(help="An operator account id.")]
) -> None:
    """Take the security-officer role back."""
    _run(ctx, lambda w: w.grant(AS_CLI, account, on=False))
    _say(f"{account} is no longer a security officer")


def register(app: typer.Typer) -> None:
    """Add the `carnet watch` group."""
    watch = typer.Typer(help="Abnormal-access detection and the alert queue.", no_args_is_help=True)
    watch.command("scan")(scan)
    watch.command("alerts")(alerts)
    watch.command("show")(show)
    watch.command("close")(close)
    watch.command("flag")(flag)
    watch.command("unflag")(unflag)
    watch.command("grant")(grant)
    watch.command("revoke")(revoke)
    app.add_typer(watch, name="watch")
