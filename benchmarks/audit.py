"""Audit log benchmark, every figure with a baseline measured in the same run.

1. appends/s with checkpoints (one event per transaction, and batches of 100), versus a raw
   insert of the same rows into a plain table of the same database;
2. the overhead the audit adds to a FHIR read and to a Synthea import (audited versus OpenAccess);
3. `verify` time for a log of --verify-events events (1 million by default), SQLite.

    .venv/bin/python benchmarks/audit.py [--backend sqlite|postgres|both] [--files N]
                                         [--rounds R] [--verify-events N]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.open_access import AuditOnlyAccess, OpenAccess  # noqa: E402
from carnet.app import Services, build_services  # noqa: E402
from carnet.audit.events import Actor, Event, Touched, build_event  # noqa: E402
from carnet.audit.verify import verify  # noqa: E402
from carnet.caller import RequestContext  # noqa: E402
from carnet.fhir.access import AccessPolicy  # noqa: E402
from carnet.fhir.service import FhirService  # noqa: E402
from carnet.fhir.transactions import run_transaction  # noqa: E402
from carnet.settings import Settings  # noqa: E402

AS_LOCAL_OPERATOR = RequestContext.local_operator()
"""The benchmark acts as the CLI does: the local operator, by name."""
from tests.support.corpus import CORPUS  # noqa: E402
from tests.support.migrated_store import SqliteTemplate  # noqa: E402

SYNTHEA = CORPUS / "synthea"
WHO = Actor("dr-bench", "127.0.0.1", "care")


@contextmanager
def backend(name: str) -> Iterator[Callable[[str], str]]:
    """A function giving a fresh database URL per tag ("" means SQLite in the data dir)."""
    if name == "sqlite":
        yield lambda _tag: ""
        return
    from tests.support.postgres import ThrowawayPostgres

    with ThrowawayPostgres() as pg:
        yield pg.create_database


_TEMPLATES: dict[Path, SqliteTemplate] = {}


def fresh(make_url: Callable[[str], str], workdir: Path, tag: str) -> Services:
    """Services on a new, empty, migrated store. On SQLite, a copy of one file migrated once per
    work folder: the stores are made outside every timed section, and migrating each one again
    only cost the smoke run (tests/functional/test_benchmarks.py) CPU."""
    url = make_url(tag)
    if not url:
        template = _TEMPLATES.get(workdir)
        if template is None:
            template = _TEMPLATES[workdir] = SqliteTemplate(workdir)
        template.copy_into(workdir / tag)
    settings = Settings.from_env({}, data_dir=str(workdir / tag), database_url=url)
    return build_services(settings, migrate=bool(url))


def events(n: int) -> list[Event]:
    return [
        build_event(
            WHO, "read", "Observation", 200, [Touched("Observation", f"o{i}", 1, f"p{i % 97}")]
        )
        for i in range(n)
    ]


def raw_appends(services: Services, evs: list[Event], batch: int) -> float:
    """Baseline: the same event rows inserted into a plain table, same transaction sizes."""
    meta = MetaData()
    table = Table(
        "raw_audit_baseline",
        meta,
        Column("seq", Integer, primary_key=True),
        Column("event_id", String(36)),
        Column("body", LargeBinary),
    )
    meta.create_all(services.engine)
    rows = [{"event_id": e.event_id, "body": e.body} for e in evs]
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        with services.engine.begin() as conn:
            conn.execute(table.insert(), rows[i : i + batch])
    return time.perf_counter() - start


def audit_appends(services: Services, evs: list[Event], batch: int, every: int) -> float:
    """Appends plus a sequenced, signed checkpoint every ``every`` events (the checkpointer)."""
    audit = services.audit
    start = time.perf_counter()
    since = 0
    for i in range(0, len(evs), batch):
        audit.append(evs[i : i + batch])
        since += batch
        if since >= every:
            audit.checkpoint()
            since = 0
    audit.checkpoint()
    return time.perf_counter() - start


def unaudited(fhir: FhirService, access: AccessPolicy | None = None) -> FhirService:
    """The same engine with another access hook (OpenAccess, which records nothing, by default)."""
    access = access or OpenAccess()
    return FhirService(
        fhir.repo,
        fhir.definitions,
        fhir.validator,
        fhir.compiler,
        default_page_size=fhir.default_page_size,
        max_page_size=fhir.max_page_size,
        access=access,
    )


# Import variants: no hook; the audit log alone as the hook (what the audit adds); the
# application's hook (the access policy deciding, then the audit log recording).
VARIANTS = ("unaudited", "audit", "policy+audit")


def engine_for(services: Services, variant: str) -> FhirService:
    if variant == "audit":
        return unaudited(services.fhir, AuditOnlyAccess(services.audit))
    return services.fhir if variant == "policy+audit" else unaudited(services.fhir)


def read_overhead(services: Services, n: int) -> tuple[float, float]:
    audited = unaudited(
        services.fhir, AuditOnlyAccess(services.audit)
    )  # the audit log alone, no policy
    plain = unaudited(audited)
    pid = audited.create(
        "Patient",
        {"resourceType": "Patient", "gender": "female", "birthDate": "1970-01-01"},
        ctx=AS_LOCAL_OPERATOR,
    ).stored.res_id
    timings = {"plain": 0.0, "audited": 0.0}
    for _ in range(3):  # interleave to share the machine's noise
        for name, fhir in (("plain", plain), ("audited", audited)):
            start = time.perf_counter()
            for _ in range(n // 3):
                fhir.read("Patient", pid, ctx=AS_LOCAL_OPERATOR)
            timings[name] += time.perf_counter() - start
    services.audit.checkpoint()
    return timings["plain"], timings["audited"]


def load_bundles(limit: int) -> list[dict[str, Any]]:
    files = sorted(SYNTHEA.glob("*.json.gz"))
    files.sort(key=lambda p: not p.name.startswith(("hospital", "practitioner")))
    return [orjson.loads(gzip.open(p).read()) for p in files[:limit]]


def import_time(services: Services, bundles: list[dict[str, Any]], variant: str) -> float:
    fhir = engine_for(services, variant)
    warm_validators(fhir, bundles)
    copies = [orjson.loads(orjson.dumps(b)) for b in bundles]
    start = time.perf_counter()
    for b in copies:
        run_transaction(fhir, b, "urn:bench", ctx=AS_LOCAL_OPERATOR)
    if variant != "unaudited":
        services.audit.checkpoint()  # sequencing and signing are part of the audit's cost
    return time.perf_counter() - start


def warm_validators(fhir: FhirService, bundles: list[dict[str, Any]]) -> None:
    """Compile the schema validator of every type present outside the timed region."""
    seen: dict[str, dict[str, Any]] = {}
    for b in bundles:
        for e in b["entry"]:
            seen.setdefault(e["resource"]["resourceType"], e["resource"])
    for resource in seen.values():
        fhir.validator.validate(resource)


def verify_million(workdir: Path, n: int) -> tuple[float, float, int]:
    services = fresh(lambda _tag: "", workdir, "verify")
    chunk = 20_000
    start = time.perf_counter()
    for i in range(0, n, chunk):
        services.audit.append(events(min(chunk, n - i)))
        if (i + chunk) % 200_000 == 0:
            services.audit.checkpoint()
    services.audit.checkpoint()
    build = time.perf_counter() - start
    report = verify(services.audit)
    services.close()
    if not report.ok:
        raise SystemExit(f"verify failed: {report.problem}")
    return build, report.seconds, report.events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--singles", type=int, default=2000, help="single-event transactions")
    parser.add_argument("--batched", type=int, default=20000, help="events in batches of 100")
    parser.add_argument("--reads", type=int, default=3000, help="FHIR reads per variant")
    parser.add_argument("--files", type=int, default=20, help="Synthea bundles to import")
    parser.add_argument("--rounds", type=int, default=3, help="import runs per variant")
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    bundles = load_bundles(args.files)
    resources = sum(len(b["entry"]) for b in bundles)
    rows: list[str] = []
    for name in backends:
        with tempfile.TemporaryDirectory() as tmp, backend(name) as url:
            work = Path(tmp)
            for label, n, batch in (("single", args.singles, 1), ("batch100", args.batched, 100)):
                evs = events(n)
                services = fresh(url, work, f"app_{label}")
                audit_s = audit_appends(services, evs, batch, services.audit.checkpoint_events)
                raw_s = raw_appends(services, events(n), batch)
                services.close()
                rows.append(
                    f"| {name} | appends, {label} | {n / audit_s:,.0f} events/s "
                    f"| raw insert {n / raw_s:,.0f} rows/s | {raw_s / audit_s:.2f} |"
                )
            services = fresh(url, work, "reads")
            plain_s, audited_s = read_overhead(services, args.reads)
            services.close()
            rows.append(
                f"| {name} | FHIR read | {args.reads / audited_s:,.0f} reads/s "
                f"| unaudited {args.reads / plain_s:,.0f} reads/s | "
                f"{plain_s / audited_s:.2f} (overhead {audited_s / plain_s - 1:+.1%}) |"
            )
            runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for r in range(args.rounds):  # rotate the order: this machine is noisy
                for variant in VARIANTS[r % 3 :] + VARIANTS[: r % 3]:
                    services = fresh(url, work, f"import_{r}_{variant}")
                    runs[variant].append(import_time(services, bundles, variant))
                    services.close()
            plain_s = statistics.median(runs["unaudited"])
            for variant in VARIANTS[1:]:
                taken = statistics.median(runs[variant])
                rows.append(
                    f"| {name} | Synthea import ({variant}), {len(bundles)} bundles, median of "
                    f"{args.rounds} | {resources / taken:,.0f} resources/s | unaudited "
                    f"{resources / plain_s:,.0f} resources/s | "
                    f"{plain_s / taken:.2f} (overhead {taken / plain_s - 1:+.1%}) |"
                )
    if args.verify_events:
        with tempfile.TemporaryDirectory() as tmp:
            build_s, verify_s, n = verify_million(Path(tmp), args.verify_events)
        rows.append(
            f"| sqlite | `verify`, {n:,} events | {verify_s:.1f} s ({n / verify_s:,.0f} events/s) "
            f"| building the log took {build_s:.1f} s | target < 30 s |"
        )
    print("| backend | measure | audited | baseline (same run) | ratio audited/baseline |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row)
    print("reproduce: .venv/bin/python benchmarks/audit.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
