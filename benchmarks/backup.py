"""Backup benchmark: `carnet backup` and `carnet restore` of a store versus a plain file copy of the
same data directory (database and blobs), measured in the same run.

    .venv/bin/python benchmarks/backup.py [--patients N] [--data-dir DIR]

``--patients N`` builds a store of the synthetic French population (about 43 resources and one PDF
document each; 23,000 patients make about a million resources). ``--data-dir`` backs up an
existing SQLite data directory instead (one built by benchmarks/ingest.py --synthetic 23000, or a
copy of a real one), untouched: the backups go to a scratch directory.

Printed: the plain copy (seconds, bytes), the first full backup, a second backup of the unchanged
store (deduplication: no new chunk), and a restore, each with its ratio to the plain copy.

``--fork`` runs each carnet command in a child forked from this process instead of a new
interpreter (the test suite's smoke run): the same command and store, minus seconds of start-up.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carnet.app import build_services  # noqa: E402
from carnet.caller import RequestContext  # noqa: E402
from carnet.fhir.importer import Importer  # noqa: E402
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


DIRECTORY_TYPES = ("Organization", "Location", "Practitioner", "PractitionerRole", "Patient")


def write_population_ndjson(patients: int, folder: Path) -> list[Path]:
    """The synthetic population as NDJSON, one file per type (its references are already by id),
    streamed: a million resources never sit in memory at once. Directory types first, as a bulk
    export's manifest would list them for a load."""
    from carnet.demo.population import generate_population, generate_shared_resources

    folder.mkdir(parents=True, exist_ok=True)
    handles: dict[str, IO[bytes]] = {}
    try:
        for bundle in itertools.chain([generate_shared_resources()], generate_population(patients)):
            for entry in bundle["entry"]:
                body = entry["resource"]
                res_type = body["resourceType"]
                if res_type not in handles:
                    handles[res_type] = (folder / f"{res_type}.ndjson").open("wb")
                handles[res_type].write(orjson.dumps(body) + b"\n")
    finally:
        for handle in handles.values():
            handle.close()
    order = {name: i for i, name in enumerate(DIRECTORY_TYPES)}
    return sorted(folder.glob("*.ndjson"), key=lambda p: (order.get(p.stem, len(order)), p.stem))


def import_store(data_dir: Path, patients: int, scratch: Path) -> int:
    """A store built the fast way an operator would load one: `carnet import` of NDJSON."""
    files = write_population_ndjson(patients, scratch / "ndjson")
    services = build_services(Settings.from_env({}, data_dir=str(data_dir)))
    try:
        report = Importer(
            services.fhir, batch_size=500, ctx=RequestContext.local_operator(source="bench")
        ).run(files)
    finally:
        services.close()
    if report.rejected_total:
        first = report.rejected[0]
        raise SystemExit(f"{report.rejected_total} rejected, first: {first.source} {first.reason}")
    shutil.rmtree(scratch / "ndjson")
    return report.stored


@dataclass(frozen=True)
class Step:
    """One command of the run: wall seconds, CPU seconds of its process tree, what it printed."""

    wall: float
    cpu: float
    out: str


def run_step(command: list[str], env: dict[str, str], *, fork: bool = False) -> Step:
    """Run a command to completion, as an operator would at the terminal, and time it. With
    ``fork``, a carnet command runs in a child forked from this process (module docstring)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    if fork and command[:3] == carnet_command():
        done = run_forked(command[3:], env)
    else:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Step(wall, cpu, done.stdout)


def carnet_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "carnet", *args]


def run_forked(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``carnet *args`` in a child forked from this process, which has imported carnet already:
    the command's own work, without the interpreter's start-up and imports. Call it with no store
    open here (a database connection must never cross a fork)."""
    import carnet.cli.main  # noqa: F401 - imported once here, not in every child

    with tempfile.TemporaryDirectory(prefix="carnet-bench-step-") as name:
        out, err = Path(name) / "stdout", Path(name) / "stderr"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _become_carnet(args, env, out, err)
        _, status = os.waitpid(pid, 0)
        texts = (out.read_text(errors="replace"), err.read_text(errors="replace"))
        return subprocess.CompletedProcess(args, os.waitstatus_to_exitcode(status), *texts)


def _become_carnet(args: list[str], env: dict[str, str], out: Path, err: Path) -> None:
    """In the forked child: run ``carnet *args`` as ``python -m carnet`` would, never return."""
    code = 1
    try:
        for path, fd in ((out, 1), (err, 2)):
            opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["carnet", *args]
        from carnet.cli.main import main

        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int | None):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported on stderr, as the exit code says
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)


def carnet_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env.update(PYTHONPATH=str(ROOT), CARNET_DATA_DIR=str(data_dir), **extra)
    return env


def small_change(data_dir: Path) -> None:
    """One patient's telephone changes: a new version of one resource (and its audit event)."""
    services = build_services(Settings.from_env({}, data_dir=str(data_dir)), migrate=False)
    try:
        with services.fhir.repo.unit(write=False) as unit:
            first = next(b for b in raw_bodies(unit) if b[0] == "Patient")
        patient = services.fhir.read("Patient", first[1], ctx=AS_LOCAL_OPERATOR)
        body = dict(patient.body or {})
        body["telecom"] = [{"system": "phone", "value": f"+33 1 {time.time_ns() % 10**8:08d}"}]
        services.fhir.update("Patient", patient.res_id, body, ctx=AS_LOCAL_OPERATOR)
    finally:
        services.close()


CHUNKS = re.compile(r"(\d+) of (\d+) chunks new \((\d+) bytes stored\)")


def measure(data_dir: Path, scratch: Path, *, fork: bool = False) -> None:
    """Plain copy, full backup, small change, incremental backup, restore, drill: each timed."""
    load_before = os.getloadavg()
    copy = run_step(["cp", "-r", str(data_dir), str(scratch / "copy")], dict(os.environ))
    copy_bytes = _size(scratch / "copy")
    shutil.rmtree(scratch / "copy")  # the disk holds a million-resource store a few times only
    backups = scratch / "backups"
    backup_args = ("backup", "--to", str(backups), "--jurisdiction", "FR", "--keep", "10")
    full = run_step(carnet_command(*backup_args), carnet_env(data_dir), fork=fork)
    full_chunks = CHUNKS.search(full.out)
    stored_full = _size(backups)
    small_change(data_dir)
    incremental = run_step(carnet_command(*backup_args), carnet_env(data_dir), fork=fork)
    new_chunks = CHUNKS.search(incremental.out)
    restored = scratch / "restored"
    restore = run_step(
        carnet_command("restore", "latest", "--from", str(backups)),
        carnet_env(restored, CARNET_KEY_FILE=str(data_dir / "master.key")),
        fork=fork,
    )
    restored_bytes = _size(restored)
    shutil.rmtree(restored)
    drill = run_step(
        carnet_command("backup", "drill", "--from", str(backups)), carnet_env(data_dir), fork=fork
    )
    load_after = os.getloadavg()
    assert full_chunks and new_chunks, (full.out, incremental.out)
    print(f"data directory: {copy_bytes} bytes")
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (1 min)")
    print("step                   wall s    cpu s   bytes          ratio to plain copy (wall)")
    print(f"plain copy (cp -r)   {copy.wall:8.2f} {copy.cpu:8.2f}   {copy_bytes:12d}  1.00")
    print(
        f"backup (full)        {full.wall:8.2f} {full.cpu:8.2f}   {stored_full:12d}  "
        f"{full.wall / copy.wall:.2f}  (stored/copied bytes {stored_full / copy_bytes:.3f}, "
        f"{full_chunks[2]} chunks)"
    )
    print(
        f"backup (incremental) {incremental.wall:8.2f} {incremental.cpu:8.2f}   "
        f"{int(new_chunks[3]):12d}  {incremental.wall / copy.wall:.2f}  "
        f"({new_chunks[1]} of {new_chunks[2]} chunks new after one resource changed)"
    )
    print(
        f"restore              {restore.wall:8.2f} {restore.cpu:8.2f}   {restored_bytes:12d}  "
        f"{restore.wall / copy.wall:.2f}"
    )
    print(
        f"drill                {drill.wall:8.2f} {drill.cpu:8.2f}   {'':12s}  "
        f"{drill.wall / copy.wall:.2f}"
    )
    for line in drill.out.splitlines():
        print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--import-patients",
        type=int,
        default=0,
        help="build --data-dir with `carnet import` of this many synthetic patients (NDJSON), "
        "keep it, and stop",
    )
    parser.add_argument(
        "--fork",
        action="store_true",
        help="run the carnet commands in children forked from this process (a smoke run: their "
        "figures then leave out the interpreter's start-up)",
    )
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where the copy, backups and restore go"
    )
    args = parser.parse_args()
    if args.import_patients:
        if args.data_dir is None or args.data_dir.exists():
            raise SystemExit("--import-patients needs a new --data-dir")
        started = time.perf_counter()
        cpu = time.process_time()
        stored = import_store(args.data_dir, args.import_patients, args.data_dir.parent)
        elapsed = time.perf_counter() - started
        print(
            f"imported {stored} resources ({args.import_patients} patients) in {elapsed:.0f} s "
            f"wall, {time.process_time() - cpu:.0f} cpu-s: {stored / elapsed:.0f}/s"
        )
        return
    with tempfile.TemporaryDirectory(prefix="carnet-bench-backup-", dir=args.scratch) as name:
        scratch = Path(name)
        data_dir = args.data_dir or scratch / "data"
        if args.data_dir is None:
            started = time.perf_counter()
            build_store(data_dir, args.patients)
            print(f"store built: {args.patients} patients in {time.perf_counter() - started:.1f} s")
        measure(data_dir, scratch, fork=args.fork)
    command = "reproduce: .venv/bin/python benchmarks/backup.py"
    print(f"{command} --data-dir DIR" if args.data_dir else f"{command} --patients {args.patients}")


if __name__ == "__main__":
    main()
