"""Backup benchmark: `carnet backup` and `carnet restore` of a store versus a plain file copy of the
same data directory (database and blobs), measured in the same run.

    .venv/bin/python benchmarks/backup.py [--patients N] [--data-dir DIR]

``--patients N`` builds a store of the synthetic French population (about 43 resources and one PDF
document each; 23,000 patients make about a million resources). ``--data-dir`` backs up an
existing SQLite data directory instead (one built by benchmarks/ingest.py --synthetic 23000, or a
copy of a real one), untouched: the backups go to a scratch directory.

Printed: the plain copy (seconds, bytes), the first full backup, a second backup of the unchanged
store (deduplication: no new chunk), and a restore, each with its ratio to the plain copy.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carnet.app import build_services  # noqa: E402
from carnet.backup.service import BackupService, restore_snapshot  # noqa: E402
from carnet.backup.target import DirectoryTarget  # noqa: E402
from carnet.caller import RequestContext  # noqa: E402
from carnet.fhir.store_scan import raw_bodies  # noqa: E402
from carnet.fhir.transactions import run_transaction  # noqa: E402
from carnet.settings import Settings  # noqa: E402

AS_LOCAL_OPERATOR = RequestContext.local_operator()


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def build_store(data_dir: Path, patients: int) -> None:
    from carnet.demo.population import generate_population, generate_shared_resources

    services = build_services(Settings.from_env({}, data_dir=str(data_dir)))
    try:
        for bundle in [generate_shared_resources(), *generate_population(patients)]:
            run_transaction(services.fhir, bundle, "urn:bench", ctx=AS_LOCAL_OPERATOR)
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carnet-bench-backup-") as scratch_name:
        scratch = Path(scratch_name)
        data_dir = args.data_dir or scratch / "data"
        if args.data_dir is None:
            started = time.perf_counter()
            build_store(data_dir, args.patients)
            print(f"store built: {args.patients} patients in {time.perf_counter() - started:.1f} s")
        settings = Settings.from_env({}, data_dir=str(data_dir))
        started = time.perf_counter()
        shutil.copy2(data_dir / "carnet.sqlite3", scratch / "copy.sqlite3")
        if (data_dir / "blobs").exists():
            shutil.copytree(data_dir / "blobs", scratch / "copy-blobs")
        copy_seconds = time.perf_counter() - started
        copy_bytes = (scratch / "copy.sqlite3").stat().st_size + (
            _size(scratch / "copy-blobs") if (scratch / "copy-blobs").exists() else 0
        )
        services = build_services(settings, migrate=False)
        try:
            keys = services.crypto.backup_keys()
            target = DirectoryTarget(scratch / "backups", "FR")
            backup = BackupService(
                settings.data_dir,
                settings.blob_dir,
                services.engine,
                services.fhir.repo,
                services.audit,
                keys,
                target,
            )
            with services.fhir.repo.unit(write=False) as unit:
                versions = sum(1 for _ in raw_bodies(unit))
            first = backup.backup(AS_LOCAL_OPERATOR)
            second = backup.backup(AS_LOCAL_OPERATOR)
            stored = _size(scratch / "backups")
            started = time.perf_counter()
            restored = scratch / "restored"
            restore_snapshot(
                target,
                keys,
                backup.manifest(second.snapshot_id),
                restored,
                f"sqlite:///{restored / 'carnet.sqlite3'}",
            )
            restore_seconds = time.perf_counter() - started
        finally:
            services.close()
    print(f"resource versions: {versions}, data directory: {copy_bytes} bytes")
    print("step                 seconds   bytes         ratio to plain copy (time)")
    print(f"plain copy           {copy_seconds:8.2f}   {copy_bytes:12d}  1.00")
    print(
        f"backup (full)        {first.seconds:8.2f}   {stored:12d}  "
        f"{first.seconds / copy_seconds:.2f}  (stored/copied bytes {stored / copy_bytes:.2f})"
    )
    print(
        f"backup (unchanged)   {second.seconds:8.2f}   {second.bytes_stored:12d}  "
        f"{second.seconds / copy_seconds:.2f}  ({second.new_chunks} of {second.chunks} chunks new)"
    )
    print(
        f"restore              {restore_seconds:8.2f}   {copy_bytes:12d}  "
        f"{restore_seconds / copy_seconds:.2f}"
    )
    command = "reproduce: .venv/bin/python benchmarks/backup.py"
    print(f"{command} --data-dir DIR" if args.data_dir else f"{command} --patients {args.patients}")


if __name__ == "__main__":
    main()
