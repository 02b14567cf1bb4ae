"""`carnet import`: FHIR files (Bundles, NDJSON, folders) into the store, streamed and resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carnet.cli.shell import console, fail, open_services, progress_bar, settings_of


def import_(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Bundles (.json/.json.gz), NDJSON files or folders.")
    ],
    show_rejected: Annotated[int, typer.Option(help="How many rejections to list.")] = 20,
    dedupe_shared: Annotated[
        bool,
        typer.Option(
            "--dedupe-shared/--no-dedupe-shared",
            help="Store an Organization/Practitioner posted with a known identifier once.",
        ),
    ] = True,
    restart: Annotated[
        bool, typer.Option(help="Forget what earlier runs committed and read every file again.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="NDJSON lines per transaction.")] = 500,
) -> None:
    """Import FHIR data (streamed, resumable); prints what was read, stored, skipped and rejected."""
    from carnet.caller import RequestContext
    from carnet.db.maintenance import analyze
    from carnet.fhir.import_files import ImportLimits, discover
    from carnet.fhir.importer import Importer

    try:
        files = discover(paths)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    settings = settings_of(ctx)
    with open_services(settings) as services:
        importer = Importer(
            services.fhir,
            batch_size=batch_size,
            limits=ImportLimits.from_settings(settings),
            resume=not restart,
            dedupe_shared=dedupe_shared,
            ctx=RequestContext.local_operator(source="import"),
        )
        with progress_bar() as progress:
            task = progress.add_task("files", total=len(files))
            report = importer.run(files, progress=lambda _p: progress.advance(task))
        analyze(services.engine)  # fresh planner statistics after a bulk load
    console.print(
        f"files {report.files}, resources read {report.read}, stored {report.stored}, "
        f"rejected {report.rejected_total}"
    )
    if report.skipped:
        console.print(f"skipped {report.skipped} (committed by an earlier run; --restart to redo)")
    for rejection in report.rejected[:show_rejected]:
        console.print(
            f"  rejected {rejection.source}: {rejection.status} {rejection.reason}", highlight=False
        )
    if report.rejected_total and report.stored == 0:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add `carnet import`."""
    app.command("import")(import_)
