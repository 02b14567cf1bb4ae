"""Search benchmark: p50/p95 latency of typical queries over a store of N resources (synthetic
French population through the full write path), with the ratio to a raw primary-key read of one
resource row measured in the same run, and the SQLite query plans of the main statements.

    .venv/bin/python benchmarks/search.py [--resources 1000000] [--backend sqlite|postgres]
                                          [--data-dir DIR] [--runs 100]

Loading is the slow part (the full write path, about 10 minutes per million resources here); the
data directory is kept, so a second run with the same --data-dir measures immediately.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient
from rich.progress import Progress
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carnet.app import Services, build_services, create_app  # noqa: E402
from carnet.authn.tokens import issue_access_token  # noqa: E402
from carnet.caller import (  # noqa: E402
    Kind,
    Principal,
    RequestContext,
)
from carnet.db.maintenance import analyze  # noqa: E402
from carnet.demo.population import generate_population, generate_shared_resources  # noqa: E402
from carnet.fhir.search import parse  # noqa: E402
from carnet.fhir.transactions import run_transaction  # noqa: E402
from carnet.settings import Settings  # noqa: E402

AS_LOCAL_OPERATOR = RequestContext.local_operator()
"""The benchmark acts as the CLI does: the local operator, by name."""

NIR = "urn:oid:1.2.250.1.213.1.4.8"
RESOURCES_PER_PATIENT = 43  # measured on the generator's output


def load(services: Services, resources: int, sample_file: Path) -> list[dict[str, str]]:
    """Load about ``resources`` resources; keep a sample of patient ids, NIRs and names."""
    if sample_file.exists():
        return list(orjson.loads(sample_file.read_bytes()))
    patients = max(1, resources // RESOURCES_PER_PATIENT)
    run_transaction(services.fhir, generate_shared_resources(), "urn:bench", ctx=AS_LOCAL_OPERATOR)
    sample: list[dict[str, str]] = []
    written = 0
    start = time.perf_counter()
    with Progress() as progress:
        task = progress.add_task("loading", total=patients)
        for i, bundle in enumerate(generate_population(patients)):
            written += len(
                run_transaction(services.fhir, bundle, "urn:bench", ctx=AS_LOCAL_OPERATOR)["entry"]
            )
            if i % max(1, patients // 500) == 0:
                p = next(
                    e["resource"]
                    for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Patient"
                )
                nir = next(x["value"] for x in p["identifier"] if x["system"] == NIR)
                sample.append({"id": p["id"], "nir": nir, "family": p["name"][0]["family"]})
            progress.advance(task)
    elapsed = time.perf_counter() - start
    analyze(services.engine)
    print(f"loaded {written} resources in {elapsed:.0f} s ({written / elapsed:.0f}/s)")
    sample_file.write_bytes(orjson.dumps(sample))
    return sample


def timed(runs: int, call: Callable[[int], Any]) -> tuple[float, float, float, float]:
    """p50 and p95 of the wall time and of the process's CPU time (every thread), in ms.

    CPU time is what a request costs; on a shared, loaded machine the wall time adds waits for
    a core (the TestClient hands each request to other threads) to it.
    """
    walls, cpus = [], []
    for i in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        call(i)
        walls.append((time.perf_counter() - start) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    walls.sort()
    cpus.sort()
    at95 = int(runs * 0.95) - 1
    return statistics.median(walls), walls[at95], statistics.median(cpus), cpus[at95]


def print_plans(services: Services, who: dict[str, str]) -> None:
    """The plans of the statements the searches above run (the page's ids, and for a count the
    COUNT), as an operator sees them (no visibility filter): EXPLAIN QUERY PLAN on SQLite,
    EXPLAIN (estimates, not run) on PostgreSQL, values written into the SQL."""
    postgres = services.engine.dialect.name == "postgresql"
    print("\nPostgreSQL query plans:" if postgres else "\nSQLite query plans:")
    explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
    weights = [("code", "http://loinc.org|29463-7")]
    shapes: list[tuple[str, str, list[tuple[str, str]], bool]] = [
        (
            "patient's weights since 2015",
            "Observation",
            [("patient", who["id"]), *weights, ("date", "ge2015-01-01")],
            False,
        ),
        (
            "last 5 lab results",
            "Observation",
            [("patient", who["id"]), ("category", "laboratory"), ("_sort", "-date")],
            False,
        ),
        ("conditions of a patient", "Condition", [("patient", who["id"])], False),
        (
            "chained INS identifier",
            "Observation",
            [("subject:Patient.identifier", f"{NIR}|{who['nir']}")],
            False,
        ),
        ("INS identifier", "Patient", [("identifier", f"{NIR}|{who['nir']}")], False),
        ("count of weights", "Observation", weights, True),
    ]
    with services.engine.connect() as conn:
        for name, res_type, params, count in shapes:
            req = parse(
                res_type,
                params,
                services.fhir.definitions,
                default_count=20,
                max_count=1000,
                strict=True,
            )
            ids, total = services.fhir.compiler.compile(req)
            statement = total if count else ids
            sql = str(statement.compile(services.engine, compile_kwargs={"literal_binds": True}))
            print(f"- {name}{' (count)' if count else ''}:")
            for row in conn.exec_driver_sql(explain + sql).all():
                print(f"    {row[0] if postgres else row[-1]}")
        # $everything reads the compartment by patient id (Unit.compartment).
        sql = (
            "SELECT * FROM fhir_resource WHERE patient_id = %s AND current AND NOT deleted"
            if postgres
            else "SELECT * FROM fhir_resource WHERE patient_id = ? AND current = 1 AND deleted IS 0"
        ) + " ORDER BY seq"
        print("- $everything (compartment rows):")
        for row in conn.exec_driver_sql(explain + sql, (who["id"],)).all():
            print(f"    {row[0] if postgres else row[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    default_dir = (
        Path(tempfile.gettempdir()) / f"carnet-search-bench-{args.backend}-{args.resources}"
    )
    data_dir = args.data_dir or default_dir
    pg = None
    url = ""
    if args.backend == "postgres":
        from tests.support.postgres import ThrowawayPostgres

        pg = ThrowawayPostgres().__enter__()
        url = pg.url
        (data_dir / "sample.json").unlink(missing_ok=True)  # a fresh cluster holds nothing
    settings = Settings.from_env({}, data_dir=str(data_dir), database_url=url)
    if pg is not None:
        # Attachments of an earlier run were sealed under that cluster's data keys: a blob
        # already present would not be written again, and would not decrypt.
        shutil.rmtree(settings.blob_dir, ignore_errors=True)
    services = build_services(settings)
    sample = load(services, args.resources, data_dir / "sample.json")
    if args.backend == "postgres":
        # Measure the steady state, not the load's aftermath: vacuumed (visibility map set, as
        # autovacuum leaves a store) and checkpointed, not while the server still writes out
        # the pages of the load.
        with services.engine.connect() as conn:
            raw = conn.execution_options(isolation_level="AUTOCOMMIT")
            raw.exec_driver_sql("VACUUM (ANALYZE)")
            raw.exec_driver_sql("CHECKPOINT")
    rng = random.Random(7)
    picks = [rng.choice(sample) for _ in range(args.runs)]
    operator = Principal(Kind.OPERATOR, "operator:bench", scopes=frozenset({"system/*.*"}))
    token, _ = issue_access_token(services.crypto.token_signer(), settings, operator)
    client = TestClient(
        create_app(settings, services),
        base_url="http://127.0.0.1",
        headers={"Authorization": f"Bearer {token}"},
    )

    def get(path: str, params: dict[str, str]) -> Callable[[int], Any]:
        def call(i: int) -> Any:
            p = picks[i]
            resolved = {k: v.format(**p) for k, v in params.items()}
            r = client.get(path.format(**p), params=resolved)
            assert r.status_code == 200, r.text[:300]
            return r

        return call

    queries: list[tuple[str, str, dict[str, str], bool]] = [
        (
            "patient's weights since 2015",
            "/fhir/Observation",
            {"patient": "{id}", "code": "http://loinc.org|29463-7", "date": "ge2015-01-01"},
            True,
        ),
        (
            "last 5 lab results",
            "/fhir/Observation",
            {"patient": "{id}", "category": "laboratory", "_sort": "-date", "_count": "5"},
            True,
        ),
        ("$everything", "/fhir/Patient/{id}/$everything", {}, True),
        ("conditions of a patient", "/fhir/Condition", {"patient": "{id}"}, True),
        (
            "prescriptions + _include requester",
            "/fhir/MedicationRequest",
            {"patient": "{id}", "_include": "MedicationRequest:requester"},
            True,
        ),
        (
            "chained INS identifier",
            "/fhir/Observation",
            {"subject:Patient.identifier": NIR + "|{nir}", "_count": "10"},
            True,
        ),
        ("INS identifier", "/fhir/Patient", {"identifier": NIR + "|{nir}"}, True),
        ("name starts with", "/fhir/Patient", {"name": "{family}", "_count": "10"}, False),
        (
            "count of weights",
            "/fhir/Observation",
            {"code": "http://loinc.org|29463-7", "_summary": "count"},
            False,
        ),
    ]
    with services.engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM fhir_resource WHERE current")).scalar_one()

        def raw(i: int) -> Any:
            return conn.execute(
                text(
                    "SELECT body FROM fhir_resource WHERE res_type='Patient' AND res_id=:id AND current"
                ),
                {"id": picks[i]["id"]},
            ).scalar_one()

        raw_p50, *_ = timed(args.runs, raw)
    print(f"{args.backend}: {total} current resources; baseline raw row read p50 {raw_p50:.2f} ms")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    header = ["p50 ms", "p95 ms", "cpu p50", "cpu p95", "p50/raw"]
    print(f"{'query':<38} " + " ".join(f"{h:>8}" for h in header))
    for name, path, params, _single in queries:
        get(path, params)(0)  # warm caches and compiled validators once
        p50, p95, cpu50, cpu95 = timed(args.runs, get(path, params))
        figures = f"{p50:>8.1f} {p95:>8.1f} {cpu50:>8.1f} {cpu95:>8.1f} {p50 / raw_p50:>8.0f}"
        print(f"{name:<38} {figures}")
    print_plans(services, sample[0])
    services.close()
    if pg is not None:
        pg.__exit__(None, None, None)
    print("reproduce: .venv/bin/python benchmarks/search.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
