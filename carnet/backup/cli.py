"""`carnet backup`, `carnet backup list|drill`, `carnet restore`: one line per outcome."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy import make_url

from carnet.audit.events import build_event
from carnet.audit.service import actor_of
from carnet.backup.chunks import BackupCorruptError
from carnet.backup.drill import Store, drill
from carnet.backup.errors import RestoreError, TargetError
from carnet.backup.jurisdictions import check_jurisdiction
from carnet.backup.postgres import PostgresToolError, scratch_database
from carnet.backup.s3 import S3Target, is_s3_url
from carnet.backup.service import (
    BackupService,
    open_manifest,
    restore_snapshot,
    snapshot_ids,
)
from carnet.backup.snapshot import UnsupportedDatabaseError
from carnet.backup.target import DirectoryTarget, Target
from carnet.caller import RequestContext
from carnet.cli.shell import fail, local_operator, open_services, say, settings_of
from carnet.crypto.service import CryptoService, open_keyring
from carnet.settings import Settings

if TYPE_CHECKING:
    from carnet.app import Services

TargetOption = Annotated[
    str | None,
    typer.Option(
        "--to",
        "--target",
        help="The backup target: a directory or s3://bucket/prefix (backup_target).",
    ),
]
SourceOption = Annotated[
    str | None,
    typer.Option(
        "--from", help="The backup target: a directory or s3://bucket/prefix (backup_target)."
    ),
]
JurisdictionOption = Annotated[
    str | None, typer.Option("--jurisdiction", help="ISO code of the target's country.")
]


def _target(
    settings: Settings, where: str | None, jurisdiction: str | None = None, *, writing: bool = True
) -> Target:
    """The target named on the command line or by backup_target, in its declared jurisdiction
    (refused for writing when undeclared or outside the EEA; reading back is always allowed)."""
    code = (jurisdiction or settings.backup_jurisdiction).strip().upper()
    refused = check_jurisdiction(code)
    if refused is not None and writing:
        raise fail(refused)
    named = where or (settings.backup_target_url if is_s3_url(settings.backup_target_url) else "")
    if not is_s3_url(named):
        return DirectoryTarget(Path(named) if named else settings.backup_target, code)
    try:
        return S3Target(
            named,
            endpoint=settings.backup_s3_endpoint,
            region=settings.backup_s3_region,
            access_key=settings.backup_s3_access_key,
            secret=settings.backup_s3_secret,
            jurisdiction=code,
        )
    except TargetError as exc:
        raise fail(str(exc)) from None


def _operator() -> RequestContext:
    return RequestContext.local_operator(actor=local_operator())


def _service(services: Services, target: Target) -> BackupService:
    return BackupService(
        services.settings.data_dir,
        services.settings.blob_dir,
        services.engine,
        services.fhir.repo,
        services.audit,
        services.crypto.backup_keys(),
        target,
    )


def backup(
    ctx: typer.Context,
    to: TargetOption = None,
    jurisdiction: JurisdictionOption = None,
    keep: Annotated[int | None, typer.Option("--keep", help="Snapshots to keep.")] = None,
) -> None:
    """Take an encrypted, deduplicated snapshot of the database, blobs and audit log."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    target = _target(settings, to, jurisdiction)
    with open_services(settings) as services:
        service = _service(services, target)
        try:
            report = service.backup(_operator())
            pruned, chunks = service.prune(keep if keep is not None else settings.backup_keep)
        except (UnsupportedDatabaseError, PostgresToolError, TargetError) as exc:
            raise fail(str(exc)) from None
    say(
        f"snapshot {report.snapshot_id} to {target.location} ({target.jurisdiction}): "
        f"{report.files} files, {report.bytes_read} bytes read, {report.new_chunks} of "
        f"{report.chunks} chunks new ({report.bytes_stored} bytes stored), "
        f"{report.live_keys} data keys escrowed, {report.destroyed_keys} shredded, "
        f"{pruned} old snapshots pruned ({chunks} chunks), {report.seconds:.1f} s"
    )


def backup_list(ctx: typer.Context, source: SourceOption = None) -> None:
    """The snapshots on the target, oldest first."""
    settings = settings_of(ctx)
    target = _target(settings, source, writing=False)
    with open_services(settings) as services:
        service = _service(services, target)
        try:
            ids = service.snapshots()
        except TargetError as exc:
            raise fail(str(exc)) from None
        for snapshot_id in ids:
            manifest = service.manifest(snapshot_id)
            say(
                f"{snapshot_id} {manifest['taken_at']} {manifest['resources']['versions']} "
                f"resource versions, {len(manifest['files'])} files"
            )


@contextmanager
def _scratch_settings(settings: Settings, manifest: dict[str, Any]) -> Iterator[Settings]:
    """Settings of an empty store beside the live one: a temporary data directory, and for a
    PostgreSQL snapshot a temporary database on the live server (dropped after)."""
    with tempfile.TemporaryDirectory(prefix="carnet-drill-") as scratch_name:
        scratch = Path(scratch_name)
        restored = settings.with_(
            data_dir=scratch,
            database_url=f"sqlite:///{scratch / 'carnet.sqlite3'}",
            key_file=settings.key_file,
        )
        if manifest.get("database") != "postgresql":
            yield restored
            return
        with scratch_database(make_url(settings.database_url)) as url:
            yield restored.with_(database_url=url.render_as_string(hide_password=False))


def backup_drill(
    ctx: typer.Context,
    source: SourceOption = None,
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="One snapshot (default: every one).")
    ] = None,
) -> None:
    """Restore snapshots into scratch space and prove them: same resources, audit log verified
    and extended by the live one, crypto-shredded patients unreadable."""
    settings = settings_of(ctx)
    target = _target(settings, source, writing=False)
    failed = 0
    with open_services(settings) as live:
        service = _service(live, target)
        try:
            ids = [snapshot] if snapshot else service.snapshots()
        except TargetError as exc:
            raise fail(str(exc)) from None
        if not ids:
            raise fail(f"no snapshot on {target.location}")
        live.audit.append([build_event(actor_of(_operator()), "backup-drill", None, 200, [])])
        live.audit.current()
        live_store = Store(live.engine, live.fhir.repo, live.audit)
        for snapshot_id in ids:
            try:
                manifest = service.manifest(snapshot_id)
            except (RestoreError, BackupCorruptError, TargetError) as exc:
                say(f"{snapshot_id} FAILED: {exc}")
                failed += 1
                continue
            with _scratch_settings(settings, manifest) as scratch:
                try:
                    restore_snapshot(
                        target, service.keys, manifest, scratch.data_dir, scratch.database_url
                    )
                except (RestoreError, BackupCorruptError, PostgresToolError, TargetError) as exc:
                    say(f"{snapshot_id} FAILED: {exc}")
                    failed += 1
                    continue
                with open_services(scratch) as restored:
                    report = drill(
                        manifest,
                        Store(restored.engine, restored.fhir.repo, restored.audit),
                        live_store,
                    )
            failed += 0 if report.ok else 1
            say(
                f"{snapshot_id} {'ok' if report.ok else 'FAILED'}: {report.versions} resource "
                f"versions ({'same' if report.same_resources else 'DIFFERENT'}), "
                f"{report.readable} current readable, audit {report.audit_events} events "
                f"{'verified' if report.audit_verified else 'BROKEN'}, "
                f"{'extended by the live log' if report.consistent_with_live else 'NOT a prefix of the live log'}, "
                f"{report.shredded} shredded patients, {report.shredded_readable} readable"
            )
    if failed:
        raise fail(f"{failed} of {len(ids)} snapshots failed the drill")


def restore(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, or 'latest'.")] = "latest",
    source: SourceOption = None,
) -> None:
    """Restore a snapshot into the (empty) data directory; the master key must be there
    (key_file), kept apart from the backups."""
    settings = settings_of(ctx)
    target = _target(settings, source, writing=False)
    try:
        keys = CryptoService(open_keyring(settings, create=False)).backup_keys()
    except RuntimeError as exc:  # KeyringError: missing, unreadable or badly protected
        raise fail(f"the master key is needed to restore: {exc}") from None
    try:
        ids = snapshot_ids(target)
        chosen = ids[-1] if snapshot == "latest" and ids else snapshot
        manifest = open_manifest(target, keys, chosen)
        restore_snapshot(target, keys, manifest, settings.data_dir, settings.database_url)
    except (RestoreError, BackupCorruptError, PostgresToolError, TargetError) as exc:
        raise fail(str(exc)) from None
    say(f"restored snapshot {chosen} into {settings.data_dir}: {len(manifest['files'])} files")


def register(app: typer.Typer) -> None:
    """Add `carnet backup` (with `list` and `drill`) and `carnet restore`."""
    group = typer.Typer(help="Backups that restore.", invoke_without_command=True)
    group.callback()(backup)
    group.command("list")(backup_list)
    group.command("drill")(backup_drill)
    app.add_typer(group, name="backup")
    app.command("restore")(restore)
