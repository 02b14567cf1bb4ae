"""Backups that restore: `carnet backup`, `carnet restore`, retention.

A snapshot is the database (SQLite `VACUUM INTO`, its wrapped data keys escrowed apart), the blob
store and the wrapped ID-token key, each cut into deduplicated chunks sealed with the backup key,
and a sealed manifest naming them with their SHA-256, the audit log's checkpoint at the time and a
digest of every stored resource body. The master key is never in a backup: it stays in its file or
HSM, kept apart by the operator, and is needed to restore.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, make_url

from carnet.audit.events import build_event
from carnet.audit.service import AuditService, actor_of
from carnet.backup.chunks import BackupCorruptError, ChunkStats, ChunkStore
from carnet.backup.errors import RestoreError
from carnet.backup.postgres import DATA_KEYS_FILE, DUMP_FILE, dump_postgres, restore_postgres
from carnet.backup.snapshot import copy_sqlite, sqlite_path, strip_data_keys
from carnet.backup.target import Target
from carnet.caller import RequestContext
from carnet.crypto.backup_keys import (
    BackupKeys,
    BackupSealError,
    forget_destroyed,
    reattach_data_keys,
)
from carnet.db.ids import time_ordered_id
from carnet.db.instants import stamp
from carnet.fhir.integrity import resources_digest, unit_digest
from carnet.fhir.repository import Repository
from carnet.private_files import private_dir, private_sqlite_file

MANIFEST_VERSION = 1
DATABASE_FILE = "carnet.sqlite3"
EXTRA_FILES = ("id-token-rsa.key",)  # beside the data, wrapped by the master key


@dataclass(frozen=True)
class SnapshotReport:
    snapshot_id: str
    files: int
    bytes_read: int
    new_chunks: int
    chunks: int
    bytes_stored: int
    seconds: float
    live_keys: int
    destroyed_keys: int


class BackupService:
    """Takes snapshots of one store to one target, restores them, and prunes old ones."""

    def __init__(
        self,
        data_dir: Path,
        blob_dir: Path,
        engine: Engine,
        repository: Repository,
        audit: AuditService,
        keys: BackupKeys,
        target: Target,
    ) -> None:
        self.data_dir = data_dir
        self.blob_dir = blob_dir
        self.engine = engine
        self.repository = repository
        self.audit = audit
        self.keys = keys
        self.target = target

    # -- taking a snapshot --------------------------------------------------------------------------

    def backup(self, ctx: RequestContext) -> SnapshotReport:
        """One snapshot; crypto-shredding since the last one reaches every older snapshot."""
        started = time.perf_counter()
        event = build_event(actor_of(ctx), "backup", None, 200, [])
        self.audit.append([event])  # the snapshot holds the record of its own taking
        checkpoint = self.audit.current()  # sequenced and signed: the copy ends on it
        store = ChunkStore(self.target, self.keys)
        files: list[dict[str, Any]] = []
        kind = self.engine.dialect.name
        with tempfile.TemporaryDirectory(prefix="carnet-backup-") as scratch_name:
            scratch = Path(scratch_name)
            if kind == "postgresql":
                database, live_keys, destroyed, (rows, digest) = dump_postgres(
                    self.engine, self.repository, scratch, self.keys, self.target, unit_digest
                )
            else:
                database, live_keys, destroyed, (rows, digest) = self._copy_sqlite(scratch)
            for name, path in database:
                with path.open("rb") as handle:
                    files.append(self._file(store, name, handle))
        # Blobs are written before the rows naming them commit, and never changed: every blob
        # the database copy names is already here.
        for path in sorted(p for p in self.blob_dir.rglob("*") if p.is_file()):
            if path.suffix == ".tmp":
                continue
            with path.open("rb") as handle:
                files.append(self._file(store, path.relative_to(self.data_dir).as_posix(), handle))
        for name in EXTRA_FILES:
            extra = self.data_dir / name
            if extra.is_file():
                with extra.open("rb") as handle:
                    files.append(self._file(store, name, handle))
        forget_destroyed(self.keys, destroyed, self.target.delete)
        snapshot_id = time_ordered_id()
        manifest = {
            "version": MANIFEST_VERSION,
            "id": snapshot_id,
            "taken_at": stamp(),
            "database": kind,
            "jurisdiction": self.target.jurisdiction,
            "master_key_id": self.keys.master_key_id,
            "checkpoint": (
                {"size": checkpoint.size, "root": checkpoint.root.hex()} if checkpoint else None
            ),
            "resources": {"versions": rows, "digest": digest},
            "files": files,
        }
        self._put_manifest(snapshot_id, manifest)
        stats: ChunkStats = store.stats
        return SnapshotReport(
            snapshot_id=snapshot_id,
            files=len(files),
            bytes_read=stats.bytes_read,
            new_chunks=stats.new_chunks,
            chunks=stats.chunks,
            bytes_stored=stats.bytes_stored,
            seconds=time.perf_counter() - started,
            live_keys=live_keys,
            destroyed_keys=len(destroyed),
        )

    def _copy_sqlite(
        self, scratch: Path
    ) -> tuple[list[tuple[str, Path]], int, list[str], tuple[int, str]]:
        copy = scratch / DATABASE_FILE
        copy_sqlite(sqlite_path(self.engine), copy)
        live_keys, destroyed = strip_data_keys(
            copy, self.keys, self.target.exists, self.target.put, self.target.delete
        )
        copy_engine = create_engine(f"sqlite:///{copy}")
        try:
            found = resources_digest(self.repository, copy_engine)
        finally:
            copy_engine.dispose()
        return [(DATABASE_FILE, copy)], live_keys, destroyed, found

    @staticmethod
    def _file(store: ChunkStore, name: str, handle: Any) -> dict[str, Any]:
        chunks, size, sha256 = store.write(handle)
        return {"path": name, "size": size, "sha256": sha256, "chunks": chunks}

    def _put_manifest(self, snapshot_id: str, manifest: dict[str, Any]) -> None:
        name = f"snapshots/{snapshot_id}"
        self.target.put(name, self.keys.seal(orjson.dumps(manifest), aad=name))

    # -- reading snapshots --------------------------------------------------------------------------

    def snapshots(self) -> list[str]:
        """Snapshot ids on the target, oldest first."""
        return snapshot_ids(self.target)

    def manifest(self, snapshot_id: str) -> dict[str, Any]:
        return open_manifest(self.target, self.keys, snapshot_id)

    # -- restoring ----------------------------------------------------------------------------------

    def restore(self, snapshot_id: str, data_dir: Path, database_url: str) -> dict[str, Any]:
        """Restore a snapshot into an empty data directory (its master key file may be there)
        and database; returns the manifest. Owners crypto-shredded since stay unreadable."""
        manifest = self.manifest(snapshot_id)
        return restore_snapshot(self.target, self.keys, manifest, data_dir, database_url)

    # -- retention ----------------------------------------------------------------------------------

    def prune(self, keep: int) -> tuple[int, int]:
        """Keep the ``keep`` newest snapshots; delete older manifests and the chunks no kept
        snapshot names. Returns (snapshots deleted, chunks deleted)."""
        ids = self.snapshots()
        doomed = ids[: max(0, len(ids) - keep)]
        if not doomed:
            return 0, 0
        kept = [self.manifest(i) for i in ids[len(doomed) :]]
        store = ChunkStore(self.target, self.keys)
        live = store.referenced([f["chunks"] for m in kept for f in m["files"]])
        for snapshot_id in doomed:
            self.target.delete(f"snapshots/{snapshot_id}")
        deleted = 0
        for name in list(self.target.names("chunks")):
            if name not in live:
                self.target.delete(name)
                deleted += 1
        return len(doomed), deleted


def snapshot_ids(target: Target) -> list[str]:
    """Snapshot ids on a target, oldest first (ids are time-ordered)."""
    return sorted(name.rsplit("/", 1)[1] for name in target.names("snapshots"))


def open_manifest(target: Target, keys: BackupKeys, snapshot_id: str) -> dict[str, Any]:
    """A snapshot's manifest, authenticated with the backup key."""
    name = f"snapshots/{snapshot_id}"
    sealed = target.get(name)
    if sealed is None:
        raise RestoreError(f"no snapshot {snapshot_id} on the target")
    try:
        manifest: dict[str, Any] = orjson.loads(keys.open(sealed, aad=name))
    except BackupSealError:
        raise BackupCorruptError(
            f"snapshot {snapshot_id} does not authenticate (another master key?)"
        ) from None
    return manifest


def restore_snapshot(
    target: Target,
    keys: BackupKeys,
    manifest: dict[str, Any],
    data_dir: Path,
    database_url: str,
) -> dict[str, Any]:
    """Write a snapshot's files into ``data_dir`` (and its database into ``database_url``, of
    the snapshot's kind), then put back the data keys still escrowed."""
    url = make_url(database_url)
    kind = manifest.get("database", "sqlite")
    if url.get_backend_name() != kind:
        raise RestoreError(f"a {kind} snapshot restores into a {kind} database only")
    if (data_dir / DATABASE_FILE).exists() or (data_dir / "blobs").exists():
        raise RestoreError(f"{data_dir} is not empty: restore into an empty data directory")
    private_dir(data_dir)
    store = ChunkStore(target, keys)
    with tempfile.TemporaryDirectory(prefix="carnet-restore-") as scratch_name:
        dumped: dict[str, Path] = {}
        for entry in manifest["files"]:
            if kind == "postgresql" and entry["path"] in (DUMP_FILE, DATA_KEYS_FILE):
                path = dumped[entry["path"]] = Path(scratch_name) / entry["path"]
            else:
                path = data_dir / entry["path"]
                private_dir(path.parent)
                if entry["path"] == DATABASE_FILE:
                    path = Path(url.database or data_dir / DATABASE_FILE)
                    private_sqlite_file(path)
            store.restore(entry["chunks"], path, entry["sha256"])
            path.chmod(0o600)
        if kind == "postgresql":
            restore_postgres(url, dumped, keys, target)
            return manifest
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            reattach_data_keys(conn, keys, target.get)
    finally:
        engine.dispose()
    return manifest
