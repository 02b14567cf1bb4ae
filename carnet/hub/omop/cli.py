"""`carnet hub extract` and `carnet hub rekey`: the operator's extraction commands.

Normally the permit workflow (carnet/hub) builds the spec from an active permit; these commands
let the operator run or repeat an extraction and rotate a project's pseudonym key by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from carnet.caller import RequestContext
from carnet.cli.shell import fail, local_operator, open_services, say, settings_of
from carnet.hub.omop.service import ExtractionError, extract, rekey
from carnet.hub.omop.spec import OMOP_TABLES, DateHandling, Engine, ExtractionSpec
from carnet.hub.omop.vocabulary import load_athena


def _names(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def hub_extract(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="Project id (its pseudonym key).")],
    permit: Annotated[str, typer.Option(help="Permit id the extraction is audited under.")],
    out: Annotated[Path, typer.Option(help="Folder for the extract and its reports.")],
    tables: Annotated[str, typer.Option(help="Comma-separated OMOP tables.")] = ",".join(
        sorted(OMOP_TABLES)
    ),
    dates: Annotated[str, typer.Option(help="shift, year, month or exact.")] = "shift",
    k: Annotated[int, typer.Option(help="The permit's k: release blocked below it.")] = 5,
    engine: Annotated[str, typer.Option(help="duckdb or spark.")] = "duckdb",
    athena: Annotated[
        Path | None,
        typer.Option(
            help="An Athena download (CONCEPT.csv) to map codes (default: hub_athena_dir)."
        ),
    ] = None,
) -> None:
    """Extract a project's data to OMOP CDM 5.4 (pseudonymised, opt-outs excluded)."""
    if dates not in ("shift", "year", "month", "exact"):
        raise fail("--dates must be shift, year, month or exact")
    if engine not in ("duckdb", "spark"):
        raise fail("--engine must be duckdb or spark")
    try:
        vocabulary = load_athena(athena) if athena else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    spec = ExtractionSpec(
        project_id=project,
        permit_id=permit,
        tables=_names(tables),
        columns={},
        dates=cast(DateHandling, dates),
        k_threshold=k,
        quasi_identifiers=(),
        engine=cast(Engine, engine),
        output_dir=out,
    )
    caller = RequestContext.local_operator(actor=local_operator())
    with open_services(settings_of(ctx)) as services:
        try:
            result = extract(services, caller, spec, vocabulary=vocabulary)
        except ExtractionError as exc:
            raise fail(str(exc)) from None
    risk = result.risk_report
    if risk.release_blocked:
        raise fail(
            f"release blocked: k={risk.k_anonymity} below {risk.k_threshold} "
            f"({risk.records_below_k} records in small classes); nothing extracted"
        )
    say(f"extract   {result.extract_path}")
    say(f"rows      {sum(result.row_counts.values())} ({risk.records} people)")
    say(f"hash      {result.output_hash}")
    say(f"k={risk.k_anonymity} l={risk.l_diversity} suppressed={risk.suppressed_records}")
    say(f"unmapped  {result.unmapped_codes_report_path}")


def hub_rekey(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="Project id whose pseudonym key is replaced.")],
) -> None:
    """Replace a project's pseudonym key: later extracts' ids are unrelated to earlier ones."""
    with open_services(settings_of(ctx)) as services:
        generation = rekey(services, project)
    say(f"project {project}: pseudonym key generation {generation}")


def register(app: typer.Typer, hub: typer.Typer | None = None) -> typer.Typer:
    """Add `extract` and `rekey` to the `carnet hub` group (created here unless given)."""
    if hub is None:
        hub = typer.Typer(help="Research hub: extracts, permits, register.", no_args_is_help=True)
        app.add_typer(hub, name="hub")
    hub.command("extract")(hub_extract)
    hub.command("rekey")(hub_rekey)
    return hub
