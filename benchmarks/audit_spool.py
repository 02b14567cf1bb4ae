"""Audit spool benchmark (SQLite), every figure with a baseline measured in the same run.

1. a FHIR read's latency (median of --reads reads through FhirService with the application's
   access hook): lock free (its event appended in the read's own transaction) and while another
   connection holds the write lock (its event spooled, fsynced, before the read returns);
2. one spooled insert (fsynced) against a plain INSERT + commit of the same row into the
   database;
3. the drain rate: --drain spooled events moved into the log, against a plain INSERT of the same
   rows (events and patient slices, same batch size) into plain tables of the same database.

    .venv/bin/python benchmarks/audit_spool.py [--reads N] [--drain N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carnet.app import Services, build_services  # noqa: E402
from carnet.audit.events import Actor, Event, Touched, build_event  # noqa: E402
from carnet.audit.service import DRAIN_BATCH  # noqa: E402
from carnet.caller import RequestContext  # noqa: E402
from carnet.db.bulk import insert_rows  # noqa: E402
from carnet.db.engine import writing  # noqa: E402
from carnet.settings import Settings  # noqa: E402

AS_LOCAL_OPERATOR = RequestContext.local_operator()

WHO = Actor("dr-bench", "127.0.0.1", "care")


def events(n: int) -> list[Event]:
    return [
        build_event(
            WHO, "read", "Observation", 200, [Touched("Observation", f"o{i}", 1, f"p{i % 97}")]
        )
        for i in range(n)
    ]


def median_ms(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def read_latencies(services: Services, runs: int) -> tuple[float, float, int]:
    """Median read latency lock free and with the lock held; how many events were spooled."""
    pid = services.fhir.create(
        "Patient", {"resourceType": "Patient"}, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    spool = services.audit.spool
    assert spool is not None

    def read() -> object:
        return services.fhir.read("Patient", pid, ctx=AS_LOCAL_OPERATOR)

    for _ in range(20):  # warm the caches and the pool
        read()
    free = median_ms(runs, read)
    before = spool.count()
    with writing(services.engine):  # a long writer
        held = median_ms(runs, read)
    spooled = spool.count() - before
    return free, held, spooled


def plain_tables(services: Services) -> tuple[Table, Table]:
    meta = MetaData()
    rows = Table(
        "plain_event",
        meta,
        Column("seq", Integer, primary_key=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("body", LargeBinary, nullable=False),
    )
    slices = Table(
        "plain_slice",
        meta,
        Column("patient_id", String(64), primary_key=True),
        Column("seq", Integer, primary_key=True),
        Column("slice", LargeBinary, nullable=False),
    )
    meta.create_all(services.engine)
    return rows, slices


def plain_insert(services: Services, tables: tuple[Table, Table], evs: list[Event]) -> None:
    """Baseline: the same rows into plain tables, one transaction per ``len(evs)`` rows."""
    rows, slices = tables
    with writing(services.engine) as conn:
        first = int(
            conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM plain_event").scalar_one()
        )
        seqs = range(first + 1, first + 1 + len(evs))
        insert_rows(
            conn,
            rows,
            ("seq", "event_id", "body"),
            [(s, e.event_id, e.body) for s, e in zip(seqs, evs, strict=True)],
        )
        insert_rows(
            conn,
            slices,
            ("patient_id", "seq", "slice"),
            [(p, s, d) for s, e in zip(seqs, evs, strict=True) for p, d in e.slices.items()],
        )


def insert_latencies(
    services: Services, tables: tuple[Table, Table], runs: int
) -> tuple[float, float]:
    """Median latency of one event: spooled (fsynced) and plain INSERT + commit in the database."""
    spool = services.audit.spool
    assert spool is not None
    spool_evs, plain_evs = iter(events(runs)), iter(events(runs))
    spooled = median_ms(runs, lambda: spool.add([next(spool_evs)]))
    plain = median_ms(runs, lambda: plain_insert(services, tables, [next(plain_evs)]))
    return spooled, plain


def drain_rate(services: Services, tables: tuple[Table, Table], n: int) -> tuple[float, float]:
    """Events/s moved from the spool into the log, and rows/s of the plain baseline."""
    spool = services.audit.spool
    assert spool is not None
    services.audit.drain()  # start empty
    evs = events(n)
    for start in range(0, n, 100):
        spool.add(evs[start : start + 100])
    started = time.perf_counter()
    moved = services.audit.drain()
    drained = moved / (time.perf_counter() - started)
    same = events(n)
    started = time.perf_counter()
    for start in range(0, n, DRAIN_BATCH):
        plain_insert(services, tables, same[start : start + DRAIN_BATCH])
    plain = n / (time.perf_counter() - started)
    return drained, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=1000, help="reads per latency figure")
    parser.add_argument("--drain", type=int, default=20_000, help="events spooled then drained")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        services = build_services(Settings.from_env({}, data_dir=str(Path(tmp) / "data")))
        try:
            free, held, spooled = read_latencies(services, args.reads)
            tables = plain_tables(services)
            one_spooled, one_plain = insert_latencies(services, tables, args.reads)
            drained, plain = drain_rate(services, tables, args.drain)
        finally:
            services.close()
    print(f"FHIR read, lock free (event in the read's transaction): median {free:.3f} ms")
    print(
        f"FHIR read, writer holds the lock (event spooled): median {held:.3f} ms "
        f"(ratio {held / free:.2f}; {spooled} of {args.reads} events spooled)"
    )
    print(
        f"one event: spooled (fsync) {one_spooled:.3f} ms, plain INSERT + commit "
        f"{one_plain:.3f} ms (ratio {one_spooled / one_plain:.2f})"
    )
    print(
        f"drain: {drained:,.0f} events/s, plain INSERT of the same rows {plain:,.0f} rows/s "
        f"(ratio {drained / plain:.2f})"
    )
    print("reproduce: .venv/bin/python benchmarks/audit_spool.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
