"""Ingest benchmark: Synthea transaction Bundles through the full path (validation, indexing,
encryption, versioning) versus a raw executemany of the same JSON bodies into a plain table of the
same database, measured in the same run.

Also measured in the same run, the storage floor: Carnet's own rows for the same Bundles (one
resource row with a ciphertext of the body's size, and the index rows the real indexer extracts),
precomputed, then inserted through the driver into the real schema, one transaction per Bundle.
No Python path can ingest faster than its own rows insert, so ``floor/raw`` bounds the ratio.

    .venv/bin/python benchmarks/ingest.py [--files N] [--backend sqlite|postgres|both] [--workers N]
                                          [--mode transactions|ndjson] [--smallest]
    .venv/bin/python benchmarks/ingest.py --synthetic 23000   # ~1 million resources, French population

``--workers N`` ingests with N processes sharing the database (as N server workers would).
``--mode ndjson`` ingests the same resources as NDJSON files (one per type, references resolved,
as a bulk export writes them) through ``carnet import``'s importer, in batches of 500 lines.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carnet.app import build_services  # noqa: E402
from carnet.caller import RequestContext  # noqa: E402
from carnet.db.bulk import insert_rows  # noqa: E402
from carnet.db.engine import make_engine  # noqa: E402
from carnet.db.ids import time_ordered_id  # noqa: E402
from carnet.fhir.importer import Importer  # noqa: E402
from carnet.fhir.indexer import KIND_COLUMNS  # noqa: E402
from carnet.fhir.models import INDEX_TABLES, resource  # noqa: E402
from carnet.fhir.transactions import run_transaction  # noqa: E402
from carnet.settings import Settings  # noqa: E402

AS_LOCAL_OPERATOR = RequestContext.local_operator()
"""The benchmark acts as the CLI does: the local operator, by name."""
from tests.support.corpus import CORPUS  # noqa: E402

SYNTHEA = CORPUS / "synthea"


def load_bundles(limit: int, smallest: bool = False) -> list[dict[str, Any]]:
    files = sorted(SYNTHEA.glob("*.json.gz"))
    if smallest:  # a quick run: every path, on the patients with the fewest resources
        files.sort(key=lambda p: p.stat().st_size)
    # Shared organisations and practitioners first, as a real feed would send them.
    files.sort(key=lambda p: not p.name.startswith(("hospital", "practitioner")))
    if not files:
        raise SystemExit(f"no Synthea bundles under {SYNTHEA} (set CARNET_CORPUS to the corpus)")
    return [orjson.loads(gzip.open(p).read()) for p in files[:limit]]


def raw_rate(url: str, bundles: list[dict[str, Any]]) -> tuple[int, float]:
    """Baseline: the same bodies as JSON, executemany into a plain table, one commit per bundle."""
    engine = make_engine(url)  # the same pragmas (WAL, synchronous=NORMAL) as Carnet's own
    meta = MetaData()
    table = Table(
        "raw_baseline",
        meta,
        Column("seq", Integer, primary_key=True),
        Column("res_type", String(64)),
        Column("res_id", String(64)),
        Column("body", LargeBinary),
    )
    meta.drop_all(engine)
    meta.create_all(engine)
    rows_per_bundle = [
        [
            {
                "res_type": e["resource"]["resourceType"],
                "res_id": e["fullUrl"][-36:],
                "body": orjson.dumps(e["resource"]),
            }
            for e in b["entry"]
        ]
        for b in bundles
    ]
    n = sum(len(r) for r in rows_per_bundle)
    start = time.perf_counter()
    for rows in rows_per_bundle:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return n, elapsed


RESOURCE_COLUMNS = (
    "res_type",
    "res_id",
    "version",
    "last_updated",
    "patient_id",
    "method",
    "deleted",
    "current",
    "body",
)


def floor_rate(settings: Settings, bundles: list[dict[str, Any]]) -> tuple[int, float]:
    """Carnet's own rows for these Bundles, precomputed, inserted into the real schema."""
    services = build_services(settings)
    indexer = services.fhir.repo.indexer
    per_bundle: list[tuple[list[tuple[Any, ...]], dict[str, list[Any]]]] = []
    for b in bundles:
        rows: list[tuple[Any, ...]] = []
        index: dict[str, list[Any]] = {}
        for e in b["entry"]:
            body = e["resource"]
            res_id = time_ordered_id()
            extracted = indexer.index(body["resourceType"], res_id, body)
            for kind, kind_rows in extracted.rows.items():
                index.setdefault(kind, []).extend(kind_rows)
            ciphertext = os.urandom(len(orjson.dumps(body)) + 28)  # AES-GCM: nonce and tag
            stamp = "2026-11-23T10:00:00.000000Z"
            row = (body["resourceType"], res_id, 1, stamp, extracted.patient_id, "POST")
            rows.append((*row, False, True, ciphertext))
        per_bundle.append((rows, index))
    n = sum(len(rows) for rows, _ in per_bundle)
    start = time.perf_counter()
    for rows, index in per_bundle:
        with services.engine.begin() as conn:
            insert_rows(conn, resource, RESOURCE_COLUMNS, rows)
            for kind, kind_rows in index.items():
                insert_rows(conn, INDEX_TABLES[kind], KIND_COLUMNS[kind], kind_rows)
    elapsed = time.perf_counter() - start
    services.close()
    return n, elapsed


def _worker(
    settings: Settings, bundles: list[dict[str, Any]], ready: Any, go: Any, out: Any
) -> None:
    services = build_services(settings, migrate=False)
    warm(services, bundles)
    ready.release()
    go.wait()
    n = 0
    try:
        for b in bundles:
            n += len(run_transaction(services.fhir, b, "urn:bench", ctx=AS_LOCAL_OPERATOR)["entry"])
    except Exception as exc:  # reported by the parent, which would otherwise wait for ever
        out.put(f"{type(exc).__name__}: {str(exc)[:300]}")
        raise
    finally:
        services.close()
    out.put(n)


def parallel_rate(
    settings: Settings, bundles: list[dict[str, Any]], workers: int
) -> tuple[int, float]:
    """``workers`` processes ingest every ``workers``-th Bundle into the same database.

    The shared organisations and practitioners go first, in this process (as a real feed loads
    its directory before the patients that reference it), and are not counted."""
    services = build_services(settings)  # migrates once, before the workers open the database
    shared = [b for b in bundles if _is_directory(b)]
    for b in shared:
        run_transaction(services.fhir, b, "urn:bench", ctx=AS_LOCAL_OPERATOR)
    services.close()
    bundles = [b for b in bundles if not _is_directory(b)]
    # Forked workers start with carnet imported (spawned ones import it again, seconds of CPU
    # each); the timed region starts once every worker is ready, so the figure is the same.
    # Forking is only safe with no other thread running (none here once services are closed).
    context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
    ready, go, out = context.Semaphore(0), context.Event(), context.Queue()
    procs = [
        context.Process(target=_worker, args=(settings, bundles[i::workers], ready, go, out))
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.acquire()
    start = time.perf_counter()
    go.set()
    counts = [out.get() for _ in procs]
    failures = [c for c in counts if isinstance(c, str)]
    if failures:
        raise SystemExit(f"a worker failed: {failures[0]}")
    n = sum(counts)
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join()
    return n, elapsed


def _is_directory(bundle: dict[str, Any]) -> bool:
    return all(
        e["resource"]["resourceType"] in ("Organization", "Practitioner", "Location")
        or e["resource"]["resourceType"].startswith("Practitioner")
        for e in bundle["entry"]
    )


def warm(services: Any, bundles: list[dict[str, Any]]) -> None:
    """Compile validators for every type outside the timed region (a running server has them)."""
    seen: dict[str, dict[str, Any]] = {}
    for b in bundles:
        for e in b["entry"]:
            seen.setdefault(e["resource"]["resourceType"], e["resource"])
    for body in seen.values():
        services.fhir.validator.validate(body)


def write_ndjson(bundles: list[dict[str, Any]], folder: Path) -> None:
    """The Bundles' resources as NDJSON files, one per type, ``urn:uuid`` references resolved."""
    types = {e["fullUrl"]: e["resource"]["resourceType"] for b in bundles for e in b["entry"]}
    mapping = {url: f"{res_type}/{url.rsplit(':', 1)[-1]}" for url, res_type in types.items()}
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    for b in bundles:
        for e in b["entry"]:
            body = dict(e["resource"], id=e["fullUrl"].rsplit(":", 1)[-1])
            raw = _REFERENCE.sub(lambda m: _resolved(m, mapping), orjson.dumps(body))
            res_type = body["resourceType"]
            if res_type not in files:
                files[res_type] = (folder / f"{res_type}.ndjson").open("wb")
            files[res_type].write(raw + b"\n")
    for handle in files.values():
        handle.close()


_REFERENCE = re.compile(rb'"reference":"(urn:uuid:[^"]*)"')


def _resolved(match: re.Match[bytes], mapping: dict[str, str]) -> bytes:
    target = mapping.get(match.group(1).decode())
    return match.group(0) if target is None else b'"reference":"' + target.encode() + b'"'


def ndjson_rate(settings: Settings, bundles: list[dict[str, Any]]) -> tuple[int, float]:
    services = build_services(settings)
    warm(services, bundles)
    folder = settings.data_dir / "ndjson"
    write_ndjson(bundles, folder)
    # Directory types first, as a bulk export's manifest would list them for a load.
    order = ("Organization", "Location", "Practitioner", "PractitionerRole", "Patient")
    files = sorted(
        folder.glob("*.ndjson"),
        key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem),
    )
    start = time.perf_counter()
    report = Importer(
        services.fhir, batch_size=500, ctx=RequestContext.local_operator(source="bench")
    ).run(files)
    elapsed = time.perf_counter() - start
    services.close()
    if report.rejected_total:
        first = report.rejected[0]
        raise SystemExit(f"{report.rejected_total} rejected, first: {first.source} {first.reason}")
    return report.read or report.stored, elapsed


def carnet_rate(settings: Settings, bundles: list[dict[str, Any]]) -> tuple[int, float]:
    services = build_services(settings)
    warm(services, bundles)
    copies = [
        orjson.loads(orjson.dumps(b)) for b in bundles
    ]  # the run rewrites references in place
    start = time.perf_counter()
    n = 0
    for b in copies:
        n += len(run_transaction(services.fhir, b, "urn:bench", ctx=AS_LOCAL_OPERATOR)["entry"])
    elapsed = time.perf_counter() - start
    services.close()
    return n, elapsed


@contextmanager
def backend_url(name: str, workdir: Path) -> Iterator[str]:
    if name == "sqlite":
        yield ""
        return
    from tests.support.postgres import ThrowawayPostgres

    with ThrowawayPostgres() as pg:
        yield pg.url


def _fresh_database(url: str, name: str) -> str:
    """A new empty database on the same PostgreSQL server (the floor needs its own schema)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=202, help="Synthea bundles to ingest")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--workers", type=int, default=1, help="ingesting processes")
    parser.add_argument("--mode", choices=["transactions", "ndjson"], default="transactions")
    parser.add_argument(
        "--smallest",
        action="store_true",
        help="the smallest patients' bundles rather than the first by name (a quick run)",
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="instead of Synthea, this many synthetic French patients (about 43 resources each)",
    )
    args = parser.parse_args()
    if args.synthetic:
        from carnet.demo.population import generate_population, generate_shared_resources

        bundles = [generate_shared_resources(), *generate_population(args.synthetic)]
    else:
        bundles = load_bundles(args.files, args.smallest)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"{'synthetic' if args.synthetic else 'Synthea'} bundles: {len(bundles)}")
    print(
        f"{'backend':<10} {'workers':>7} {'resources':>9} {'carnet/s':>9} {'floor/s':>9} "
        f"{'raw/s':>9} {'ratio':>6} {'floor/raw':>9}"
    )
    for name in backends:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            with backend_url(name, workdir) as url:
                settings = Settings.from_env({}, data_dir=str(workdir / "data"), database_url=url)
                if args.mode == "ndjson":
                    n, carnet_s = ndjson_rate(settings, bundles)
                elif args.workers > 1:
                    n, carnet_s = parallel_rate(settings, bundles, args.workers)
                else:
                    n, carnet_s = carnet_rate(settings, bundles)
                floor_url = url and _fresh_database(url, "floor")
                floor_settings = settings.with_(data_dir=workdir / "floor")
                floor_settings = floor_settings.with_(
                    database_url=floor_url or f"sqlite:///{workdir / 'floor.sqlite3'}"
                )
                floor_n, floor_s = floor_rate(floor_settings, bundles)
                raw_url = url or f"sqlite:///{workdir / 'raw.sqlite3'}"
                raw_n, raw_s = raw_rate(raw_url, bundles)
                rate, floor, raw = n / carnet_s, floor_n / floor_s, raw_n / raw_s
                print(
                    f"{name:<10} {args.workers:>7} {n:>9} {rate:>9.0f} {floor:>9.0f} "
                    f"{raw:>9.0f} {rate / raw:>6.3f} {floor / raw:>9.3f}"
                )
    print("reproduce: .venv/bin/python benchmarks/ingest.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
