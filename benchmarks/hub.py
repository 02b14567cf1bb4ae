"""Research extraction benchmark: rows/s from a store to OMOP CDM 5.4 on DuckDB and Spark local,
each against a plain DuckDB load of the same rows in the same run; and the risk report's time on
--risk-rows people (1 million by default).

The store is --patients synthetic people with --per-patient resources each (Encounter, Conditions,
Observations, MedicationRequests), loaded through the importer (as the operator would). Every
extraction reads through the policy path, decrypts, maps, pseudonymises (one keyed hash per
person) and writes. Two baselines, in the same run:
- plain_copy: DuckDB creating the same tables from Parquet files of the extract's own rows (the
  floor of any DuckDB write of those rows; ratio_write and ratio_total are against it);
- read_load: the same resources read through the same policy path (a system caller, audited,
  decrypted) and loaded as JSON text into a DuckDB table, no mapping (the floor of any extraction
  that reads the encrypted store as the issue requires; ratio_read is against it).
--store DIR keeps the imported store in DIR and reuses it on the next run (same sizes).

    .venv/bin/python benchmarks/hub.py [--patients 50] [--per-patient 20]
                                       [--engines duckdb,spark] [--risk-rows 1000000]
                                       [--store DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carnet.app import Services, build_services  # noqa: E402
from carnet.caller import RequestContext  # noqa: E402
from carnet.fhir.importer import Importer  # noqa: E402
from carnet.hub.omop.mapping import SOURCE_TYPES  # noqa: E402
from carnet.hub.omop.risk import QUASI_IDENTIFIERS, measure, protect  # noqa: E402
from carnet.hub.omop.service import (  # noqa: E402
    READ_BATCH,
    collector_paused,
    extract,
    extraction_context,
)
from carnet.hub.omop.spec import OMOP_TABLES, ExtractionSpec  # noqa: E402
from carnet.settings import Settings  # noqa: E402

AS_LOCAL_OPERATOR = RequestContext.local_operator(source="bench")
"""The benchmark acts as the CLI does: the local operator, by name."""
CODES = ["E11", "I10", "J45", "K21.9", "M54.5", "F32.9", "N39.0", "E78.5"]
LABS = [("15074-8", 4.0, 9.0), ("2093-3", 3.0, 7.0), ("718-7", 10.0, 17.0), ("8480-6", 100, 170)]
DRUGS = ["A10BA02", "C10AA05", "C09AA05", "N02BE01"]


def write_store(folder: Path, patients: int, per_patient: int, seed: int = 7) -> int:
    """NDJSON files of a synthetic population; returns the number of resources."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        t: (folder / f"{t}.ndjson").open("wb")
        for t in ("Patient", "Encounter", "Condition", "Observation", "MedicationRequest")
    }
    total = 0
    for p in range(patients):
        pid = f"bench-{p}"
        files["Patient"].write(
            orjson.dumps(
                {
                    "resourceType": "Patient",
                    "id": pid,
                    "gender": rng.choice(["male", "female"]),
                    "birthDate": f"{rng.randint(1930, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    "address": [
                        {
                            "postalCode": f"{rng.choice([75, 13, 69, 33, 59]):02d}00{rng.randint(0, 9)}"
                        }
                    ],
                }
            )
            + b"\n"
        )
        total += 1
        subject = {"reference": f"Patient/{pid}"}
        encounter = f"{pid}-e0"
        files["Encounter"].write(
            orjson.dumps(
                {
                    "resourceType": "Encounter",
                    "id": encounter,
                    "status": "finished",
                    "class": {"code": rng.choice(["AMB", "IMP", "EMER"])},
                    "subject": subject,
                    "period": {"start": "2023-03-01T09:00:00Z", "end": "2023-03-01T11:00:00Z"},
                }
            )
            + b"\n"
        )
        total += 1
        for n in range(per_patient - 2):
            day = f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            kind = n % 3
            if kind == 0:
                code, low, high = rng.choice(LABS)
                body: dict[str, Any] = {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                    "effectiveDateTime": f"{day}T08:{rng.randint(0, 59):02d}:00+01:00",
                    "valueQuantity": {"value": round(rng.uniform(low, high), 2), "code": "mg/dL"},
                    "encounter": {"reference": f"Encounter/{encounter}"},
                }
                out = files["Observation"]
            elif kind == 1:
                body = {
                    "resourceType": "Condition",
                    "code": {
                        "coding": [
                            {"system": "http://hl7.org/fhir/sid/icd-10", "code": rng.choice(CODES)}
                        ]
                    },
                    "onsetDateTime": day,
                }
                out = files["Condition"]
            else:
                body = {
                    "resourceType": "MedicationRequest",
                    "status": "active",
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [{"system": "http://www.whocc.no/atc", "code": rng.choice(DRUGS)}]
                    },
                    "authoredOn": day,
                }
                out = files["MedicationRequest"]
            body["id"] = f"{pid}-{n}"
            body["subject"] = subject
            out.write(orjson.dumps(body) + b"\n")
            total += 1
    for handle in files.values():
        handle.close()
    return total


def load(services: Services, folder: Path) -> None:
    order = ["Patient", "Encounter", "Condition", "Observation", "MedicationRequest"]
    files = [folder / f"{name}.ndjson" for name in order]
    report = Importer(services.fhir, batch_size=1000, ctx=AS_LOCAL_OPERATOR).run(files)
    if report.rejected_total:
        first = report.rejected[0]
        raise SystemExit(f"{report.rejected_total} rejected, first: {first.source} {first.reason}")


def plain_copy_seconds(extract_path: Path, work: Path) -> float:
    """DuckDB creating the extract's tables from Parquet copies of its own rows (timed)."""
    work.mkdir(parents=True, exist_ok=True)
    sources: dict[str, Path] = {}
    if extract_path.suffix == ".duckdb":
        with duckdb.connect(str(extract_path), read_only=True) as con:
            for table in sorted(OMOP_TABLES):
                sources[table] = work / f"{table}.parquet"
                con.execute(f"COPY {table} TO '{sources[table]}' (FORMAT parquet)")
    else:
        sources = {t: extract_path / t for t in sorted(OMOP_TABLES)}
    target = work / "plain.duckdb"
    target.unlink(missing_ok=True)
    start = time.perf_counter()
    with duckdb.connect(str(target)) as con:
        for table, source in sources.items():
            pattern = f"{source}/*.parquet" if source.is_dir() else str(source)
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{pattern}')")
    return time.perf_counter() - start


def read_load_seconds(services: Services, work: Path) -> tuple[float, float, int]:
    """The same resources read through the extraction's policy path (decrypted, audited) and
    loaded as (type, id, JSON) into a DuckDB table: what any extraction must at least do.
    (seconds, CPU seconds, resources)."""
    target = work / "read_load.duckdb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    ctx = extraction_context(AS_LOCAL_OPERATOR, "bench-baseline")
    start, cpu = time.perf_counter(), time.process_time()
    count = 0
    with (
        collector_paused(),
        duckdb.connect(str(target)) as con,
        services.fhir.session(ctx, "export", None, None) as session,
    ):
        con.execute("CREATE TABLE resource (res_type VARCHAR, res_id VARCHAR, body VARCHAR)")
        for batch in session.current_batches(
            "export", SOURCE_TYPES, batch=READ_BATCH, inflate=False
        ):
            rows = pa.table(
                {
                    "res_type": [r.res_type for r in batch],
                    "res_id": [r.res_id for r in batch],
                    "body": [orjson.dumps(r.body).decode() for r in batch],
                }
            )
            con.execute("INSERT INTO resource SELECT * FROM rows")
            count += rows.num_rows
    return time.perf_counter() - start, time.process_time() - cpu, count


def risk_seconds(rows: int, folder: Path, seed: int = 11) -> tuple[float, float, float]:
    """(the k/l/risk measure, the whole protection step, its CPU seconds in every thread) on
    ``rows`` synthetic people. The CPU time tells a loaded machine from a slow query."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.arange(1, rows + 1, dtype=np.int64)
    files = {n: folder / f"{n}.parquet" for n in ("person", "person_qi", "condition_occurrence")}
    pq.write_table(
        pa.table(
            {
                "person_id": ids,
                "year_of_birth": rng.integers(1930, 2010, rows),
                "gender_source_value": rng.choice(np.array(["male", "female"]), rows),
            }
        ),
        files["person"],
    )
    pq.write_table(
        pa.table(
            {
                "person_id": ids,
                "departement": rng.choice(np.array(["75", "13", "69", "33", "59"]), rows),
            }
        ),
        files["person_qi"],
    )
    codes = np.array([f"C{i}" for i in range(2000)])
    pq.write_table(
        pa.table(
            {
                "person_id": ids,
                "condition_source_value": rng.choice(codes, rows),
            }
        ),
        files["condition_occurrence"],
    )
    from carnet.hub.omop.risk import frame_sql

    with duckdb.connect() as con:
        start = time.perf_counter()
        measure(con, frame_sql(files, 5, generalised=False), QUASI_IDENTIFIERS, 5)
        measured = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        protect(con, files, QUASI_IDENTIFIERS, 5)
        protected, cpu = time.perf_counter() - start, time.process_time() - cpu
    return measured, protected, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--per-patient", type=int, default=20)
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--risk-rows", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, default=None, help="keep and reuse the store here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carnet-hub-bench-") as tmp:
        work = Path(tmp)
        store = args.store or work / "store"
        fresh = not (store / "data").exists()
        resources = write_store(store / "ndjson", args.patients, args.per_patient)
        services = build_services(Settings.from_env({}, data_dir=str(store / "data")))
        try:
            if fresh:
                load(services, store / "ndjson")
            print(f"store: {resources} resources, {args.patients} patients (SQLite)")
            if args.engines:
                read_load, read_cpu, read = read_load_seconds(services, work / "baseline")
                print(
                    f"read_load: {read} resources read and loaded in {read_load:.2f} s "
                    f"({read_cpu:.2f} s CPU)"
                )
            print(
                "engine  rows  seconds  cpu_s  rows/s  read+stage_s  release_s  write_s  "
                "plain_copy_s  ratio_write  ratio_total  ratio_read  ratio_read_cpu"
            )
            for engine in [e for e in args.engines.split(",") if e]:
                timings: dict[str, float] = {}
                spec = ExtractionSpec(
                    project_id=f"bench-{engine}",
                    permit_id="bench",
                    tables=OMOP_TABLES,
                    columns={},
                    dates="shift",
                    k_threshold=1,
                    quasi_identifiers=(),
                    engine=engine,  # type: ignore[arg-type]
                    output_dir=work / "out" / engine,
                )
                if engine == "spark":  # the session's start is not the extraction's cost
                    from carnet.hub.omop.engines import spark_session

                    spark_session()
                start, cpu = time.perf_counter(), time.process_time()
                result = extract(services, AS_LOCAL_OPERATOR, spec, timings=timings)
                total, cpu = time.perf_counter() - start, time.process_time() - cpu
                rows = sum(result.row_counts.values())
                plain = plain_copy_seconds(result.extract_path, work / "plain" / engine)
                print(
                    f"{engine:6}  {rows}  {total:.2f}  {cpu:.2f}  {rows / total:.0f}  "
                    f"{timings['read_and_stage']:.2f}  {timings['release']:.2f}  "
                    f"{timings['write']:.2f}  {plain:.3f}  "
                    f"{plain / timings['write']:.2f}  {plain / total:.3f}  {read_load / total:.2f}  "
                    f"{read_cpu / cpu:.2f}"
                )
        finally:
            services.close()
        if args.risk_rows:
            measured, protected, cpu = risk_seconds(args.risk_rows, work / "risk")
            print(
                f"risk report on {args.risk_rows} people: measure {measured:.3f} s, "
                f"with generalisation/suppression {protected:.3f} s ({cpu:.3f} s CPU)"
            )
    print(
        "reproduce: .venv/bin/python benchmarks/hub.py "
        f"--patients {args.patients} --per-patient {args.per_patient} "
        f"--engines {args.engines} --risk-rows {args.risk_rows}"
    )


if __name__ == "__main__":
    main()
