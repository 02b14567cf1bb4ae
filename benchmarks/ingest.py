"""Ingest benchmark: Synthea transaction Bundles through the full path (validation, indexing,
encryption, versioning) versus a raw executemany of the same JSON bodies into a plain table of the
same database, measured in the same run.

    .venv/bin/python benchmarks/ingest.py [--files N] [--backend sqlite|postgres|both]
    .venv/bin/python benchmarks/ingest.py --synthetic 23000   # ~1 million resources, French population
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
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
from carnet.db.engine import make_engine  # noqa: E402
from carnet.fhir.transactions import run_transaction  # noqa: E402
from carnet.settings import Settings  # noqa: E402

SYNTHEA = ROOT.parent / "shared" / "corpus" / "synthea"


def load_bundles(limit: int) -> list[dict[str, Any]]:
    files = sorted(SYNTHEA.glob("*.json.gz"))
    # Shared organisations and practitioners first, as a real feed would send them.
    files.sort(key=lambda p: not p.name.startswith(("hospital", "practitioner")))
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


def carnet_rate(settings: Settings, bundles: list[dict[str, Any]]) -> tuple[int, float]:
    services = build_services(settings)
    # Compile validators for every type outside the timed region (a running server has them warm).
    seen: dict[str, dict[str, Any]] = {}
    for b in bundles:
        for e in b["entry"]:
            seen.setdefault(e["resource"]["resourceType"], e["resource"])
    for resource in seen.values():
        services.fhir.validator.validate(resource)
    copies = [
        orjson.loads(orjson.dumps(b)) for b in bundles
    ]  # the run rewrites references in place
    start = time.perf_counter()
    n = 0
    for b in copies:
        n += len(run_transaction(services.fhir, b, "urn:bench")["entry"])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=202, help="Synthea bundles to ingest")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
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
        bundles = load_bundles(args.files)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"{'synthetic' if args.synthetic else 'Synthea'} bundles: {len(bundles)}")
    print(f"{'backend':<10} {'resources':>9} {'carnet/s':>9} {'raw/s':>9} {'ratio':>6}")
    for name in backends:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            with backend_url(name, workdir) as url:
                settings = Settings.from_env({}, data_dir=str(workdir / "data"), database_url=url)
                n, carnet_s = carnet_rate(settings, bundles)
                raw_url = url or f"sqlite:///{workdir / 'raw.sqlite3'}"
                raw_n, raw_s = raw_rate(raw_url, bundles)
                print(
                    f"{name:<10} {n:>9} {n / carnet_s:>9.0f} {raw_n / raw_s:>9.0f} "
                    f"{(n / carnet_s) / (raw_n / raw_s):>6.3f}"
                )
    print("reproduce: .venv/bin/python benchmarks/ingest.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
