"""The `carnet` command. Each command prints one clear line and exits non-zero on failure."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from carnet.access.cli import register as register_login_accounts
from carnet.access.oauth_cli import clients_app, token_app
from carnet.access.rules_cli import rules_app
from carnet.db.maintenance import analyze
from carnet.private_files import open_private
from carnet.record.cli import accounts_app
from carnet.settings import Settings

if TYPE_CHECKING:
    from carnet.caller import RequestContext

app = typer.Typer(
    help="Carnet: sovereign health record and research data hub.", no_args_is_help=True
)
keys_app = typer.Typer(help="Master key and data keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(help="Tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
identity_app = typer.Typer(
    help="Master patient index and identity vigilance.", no_args_is_help=True
)
app.add_typer(identity_app, name="identity")
app.add_typer(accounts_app, name="accounts")
register_login_accounts(accounts_app)  # add-person, add-professional, add-operator
app.add_typer(clients_app, name="clients")
app.add_typer(token_app, name="token")
app.add_typer(rules_app, name="rules")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _services(settings: Settings):  # type: ignore[no-untyped-def]
    from carnet.app import build_services

    try:
        return build_services(settings)
    except Exception as exc:  # noqa: BLE001 - one clear line, never a traceback with data in it
        raise _fail(f"cannot open Carnet ({type(exc).__name__}: {exc})") from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: setting host).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: setting port).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL deployments).")] = 1,
) -> None:
    """Serve the FHIR API (loopback only until authentication is configured)."""
    import uvicorn

    from carnet.log_safety import uvicorn_log_config

    # The app (carnet.asgi, in each worker) reads its settings from the environment: the listen
    # address chosen here must reach it, since an unset issuer_url is derived from it.
    if host:
        os.environ["CARNET_HOST"] = host
    if port:
        os.environ["CARNET_PORT"] = str(port)
    settings = Settings.from_env()
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise _fail("--workers > 1 needs PostgreSQL (set CARNET_DATABASE_URL)")
    services = _services(settings)  # migrate once, before workers start
    services.close()
    console.print(
        f"Carnet FHIR API on http://{host or settings.host}:{port or settings.port}/fhir/metadata"
    )
    uvicorn.run(
        "carnet.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="warning",
        access_log=False,
        **forwarding_options(settings),
        server_header=False,  # no banner naming the server software and version
        log_config=uvicorn_log_config(),  # tracebacks reduced to their type: no SQL, no values
    )


def forwarding_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy-header options from the ``trusted_proxies`` setting. uvicorn alone believes
    X-Forwarded-For from any loopback peer, so a local client could forge its address (the audit's
    source, the rate limits' key): headers are read only when proxies are configured, and only
    from them."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


@app.command()
def demo(
    patients: Annotated[int, typer.Option(help="Synthetic patients to load.")] = 200,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server after loading.")
    ] = True,
) -> None:
    """Load a synthetic French population (idempotent) and its reference identity register, then
    serve."""
    from carnet.demo.accounts import create_demo_accounts
    from carnet.demo.service import load_demo
    from carnet.identity.register_store import load_demo_register

    # The demo's professionals log in at the development identity provider (unless told otherwise);
    # set in the environment so that the server started below (carnet.asgi) sees it too.
    os.environ.setdefault("CARNET_DEV_IDP", "true")
    settings = Settings.from_env()
    services = _services(settings)
    registered = load_demo_register(services.identity, patients)  # before the Patients are matched
    with _progress() as progress:
        task = progress.add_task("synthetic patients", total=patients)
        report = load_demo(
            services.fhir, patients, ctx=_local(), progress=lambda: progress.advance(task)
        )
    analyze(services.engine)  # fresh planner statistics after a bulk load
    ready = create_demo_accounts(
        services.fhir,
        services.accounts,
        services.clients,
        services.controls,
        services.record,
        issuer_url=settings.issuer_url,
        ctx=_local(),
    )
    services.close()
    console.print(
        f"demo population: {report.patients_loaded} patients loaded, "
        f"{report.patients_skipped} already present, {report.resources} resources written"
    )
    console.print(f"identity register: {registered} reference identities (INSi stand-in)")
    console.print(f"data directory: {settings.data_dir}")
    console.print("ready-made accounts (synthetic data, loopback demo):")
    for account in ready:
        console.print(f"  {account.role:<15} {account.login:<28} {account.detail}", soft_wrap=True)
    console.print("  operator        carnet token issue --operator demo --scope 'system/*.rs'")
    if serve_after:
        console.print(
            f"open http://{settings.host}:{settings.port}/fhir/Patient?_count=10 "
            f"or http://{settings.host}:{settings.port}/fhir/metadata"
        )
        serve(host=None, port=None, workers=1)


@app.command("import")
def import_(
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
    from carnet.fhir.import_files import ImportLimits, discover
    from carnet.fhir.importer import Importer

    try:
        files = discover(paths)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    settings = Settings.from_env()
    services = _services(settings)
    importer = Importer(
        services.fhir,
        batch_size=batch_size,
        limits=ImportLimits.from_settings(settings),
        resume=not restart,
        dedupe_shared=dedupe_shared,
        ctx=RequestContext.local_operator(source="import"),
    )
    with _progress() as progress:
        task = progress.add_task("files", total=len(files))
        report = importer.run(files, progress=lambda _p: progress.advance(task))
    analyze(services.engine)  # fresh planner statistics after a bulk load
    services.close()
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


@keys_app.command("status")
def keys_status() -> None:
    """Where the master key lives, its fingerprint, and how many data keys exist."""
    settings = Settings.from_env()
    services = _services(settings)
    status = services.crypto.status(services.engine, settings)
    services.close()
    console.print(f"key source      {status.source}")
    console.print(f"location        {status.location} (mode {status.file_mode})")
    console.print(f"master key id   {status.master_key_id}")
    console.print(
        f"data keys       {status.data_keys_active} active, {status.data_keys_destroyed} destroyed"
    )


@app.command()
def migrate() -> None:
    """Apply database migrations (also done at every start)."""
    _services(Settings.from_env()).close()
    console.print("schema is up to date")


# -- audit ----------------------------------------------------------------------------------------


def _audit_ctx() -> RequestContext:
    import getpass

    from carnet.caller import RequestContext

    return RequestContext.local_operator(
        actor=f"operator:{getpass.getuser()}", source="cli", purpose="audit"
    )


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the Merkle tree from the stored events and check every signed checkpoint."""
    from carnet.audit.verify import verify

    services = _services(Settings.from_env())
    report = verify(services.audit)
    services.close()
    if not report.ok:
        where = (
            f"first bad event index {report.first_bad}: " if report.first_bad is not None else ""
        )
        raise _fail(f"audit log TAMPERED: {where}{report.problem}")
    console.print(
        f"audit log OK: {report.events} events, {report.checkpoints} checkpoints verified "
        f"({report.pending} pending) in {report.seconds:.1f} s"
    )


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sequence pending events and sign a checkpoint now."""
    services = _services(Settings.from_env())
    try:
        cp = services.audit.checkpoint()
        latest = cp or services.audit.latest()
    finally:
        services.close()
    if latest is None:
        raise _fail("the audit log is empty; nothing to checkpoint")
    state = "signed" if cp else "no new events; latest"
    console.print(f"{state} checkpoint: size {latest.size}, root {latest.root_b64}")


@audit_app.command("witness")
def audit_witness(
    path: Annotated[Path, typer.Argument(help="A file (NDJSON) or directory kept elsewhere.")],
) -> None:
    """Append the latest checkpoint to a witness file/directory after checking consistency."""
    from carnet.audit.verify import WitnessError, witness

    services = _services(Settings.from_env())
    try:
        result = witness(services.audit, path)
    except WitnessError as exc:
        raise _fail(str(exc)) from None
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(f"cannot use witness {path}: {type(exc).__name__}: {exc}") from None
    finally:
        services.close()
    before = f"consistent with {result.previous.size}" if result.previous else "first checkpoint"
    written = "written" if result.written else "already witnessed"
    console.print(f"checkpoint {result.checkpoint.size} {written} ({before})")


@audit_app.command("export")
def audit_export(
    patient: Annotated[str, typer.Option(help="Patient id whose access history to export.")],
    out: Annotated[
        Path | None, typer.Option(help="Output file (default: standard output).")
    ] = None,
) -> None:
    """Export a patient's access history (NDJSON: checkpoint, then events with proofs)."""
    from carnet.audit.render import export_header, export_line

    services = _services(Settings.from_env())
    try:
        checkpoint, events = services.audit.export_patient(patient, _audit_ctx())
        handle = open_private(out) if out else sys.stdout.buffer
        count = 0
        try:
            handle.write(export_header(checkpoint, services.audit.public_key, patient) + b"\n")
            for logged in events:
                handle.write(export_line(logged) + b"\n")
                count += 1
        finally:
            if out:
                handle.close()
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror}") from None
    finally:
        services.close()
    if out:
        console.print(f"{count} events exported to {out}")


# -- identity -------------------------------------------------------------------------------------


def _officer() -> str:
    import getpass

    return f"operator:{getpass.getuser()}"


def _as_officer() -> RequestContext:
    """The identity vigilance officer at this machine's CLI: the local operator, by name."""
    from carnet.caller import RequestContext

    return RequestContext.local_operator(actor=_officer())


def _local() -> RequestContext:
    """The CLI's in-process loaders (demo, import) act as the local operator, by name."""
    from carnet.caller import RequestContext

    return RequestContext.local_operator()


@identity_app.command("queue")
def identity_queue(
    state: Annotated[str, typer.Option(help="open, merged, dismissed or unmerged.")] = "open",
) -> None:
    """List vigilance items with their evidence (ids, comparison levels and weights)."""
    services = _services(Settings.from_env())
    try:
        items = services.identity.queue(state)
    finally:
        services.close()
    for item in items:
        best = item["evidence"]["candidates"][:1]
        levels = ", ".join(
            f"{c['comparison']}={c['level']}" for c in (best[0]["comparisons"] if best else [])
        )
        weight = "-" if item["weight"] is None else f"{item['weight']:.1f}"
        console.print(
            f"{item['id']}  {item['kind']:<12} identity {item['identity']} -> "
            f"{item['candidate'] or '-'}  weight {weight}  held {len(item['quarantined'])}  "
            f"{levels}"
        )
    console.print(f"{len(items)} {state} item(s)")


@identity_app.command("merge")
def identity_merge(
    item: Annotated[str, typer.Argument(help="Vigilance item id (or source identity id).")],
    into: Annotated[
        str | None, typer.Option(help="Target identity id, to merge two identities directly.")
    ] = None,
) -> None:
    """Same person: merge an item's pending identity into its candidate (or SOURCE --into TARGET)."""
    from carnet.identity.service import VigilanceError

    services = _services(Settings.from_env())
    try:
        if into:
            done = services.identity.merge(item, into, actor=_officer(), ctx=_as_officer())
        else:
            done = services.identity.merge_item(item, actor=_officer(), ctx=_as_officer())
    except VigilanceError as exc:
        raise _fail(str(exc)) from None
    finally:
        services.close()
    console.print(
        f"merge {done['merge']}: {done['source']} replaced by {done['target']}, "
        f"{done['moved']} resource(s) moved, {done['released']} quarantined document(s) attached"
    )


@identity_app.command("unmerge")
def identity_unmerge(merge: Annotated[str, typer.Argument(help="Merge id.")]) -> None:
    """Undo a merge: the source identity is active again and the Patient links are removed."""
    from carnet.identity.service import VigilanceError

    services = _services(Settings.from_env())
    try:
        services.identity.unmerge(merge, actor=_officer(), ctx=_as_officer())
    except VigilanceError as exc:
        raise _fail(str(exc)) from None
    finally:
        services.close()
    console.print(f"merge {merge} undone")


@identity_app.command("dismiss")
def identity_dismiss(item: Annotated[str, typer.Argument(help="Vigilance item id.")]) -> None:
    """Not the same person: the item's pending identity becomes a distinct identity."""
    from carnet.identity.service import VigilanceError

    services = _services(Settings.from_env())
    try:
        released = services.identity.dismiss(item, actor=_officer(), ctx=_as_officer())
    except VigilanceError as exc:
        raise _fail(str(exc)) from None
    finally:
        services.close()
    console.print(f"item {item} dismissed, {released} quarantined document(s) attached")


@identity_app.command("train")
def identity_train(
    random_pairs: Annotated[
        int, typer.Option(help="Random pairs sampled to estimate u.")
    ] = 200_000,
) -> None:
    """Estimate the match weights from the index itself (EM on DuckDB) and use them from now on."""
    services = _services(Settings.from_env())
    try:
        if services.identity.count() < 2:
            raise _fail("the index holds fewer than 2 identities; nothing to train on")
        report = services.identity.train(random_pairs=random_pairs)
    finally:
        services.close()
    console.print(
        f"trained on {report.records} identities, {report.blocked_pairs} blocked pairs, "
        f"{report.iterations} EM iterations; prior weight {report.model.prior_weight:.1f}"
    )


@identity_app.command("dedupe")
def identity_dedupe(
    engine: Annotated[str, typer.Option(help="Batch engine: duckdb or spark.")] = "duckdb",
    spark_master: Annotated[
        str, typer.Option(help="Spark master with --engine spark (a cluster URL in production).")
    ] = "local[2]",
) -> None:
    """List suspected duplicate pairs of the whole index with their decision (link or review)."""
    from carnet.identity.engines import ENGINES, EngineUnavailable

    if engine not in ENGINES:
        raise _fail(f"engine {engine!r} is not known; choose one of {', '.join(ENGINES)}")
    services = _services(Settings.from_env())
    try:
        pairs = services.identity.dedupe(engine=engine, spark_master=spark_master)
    except EngineUnavailable as exc:
        raise _fail(str(exc)) from None
    finally:
        services.close()
    for pair in pairs:
        console.print(f"{pair.outcome:<6} {pair.weight:6.1f}  {pair.a}  {pair.b}")
    links = sum(p.outcome == "link" for p in pairs)
    console.print(
        f"{len(pairs)} suspected pair(s), {links} above the link threshold (engine {engine})"
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
