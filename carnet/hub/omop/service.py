"""The extraction of an active permit's data to OMOP CDM 5.4 (the entry hub-permits calls).

``extract(services, ctx, spec)`` reads the record store through the policy path, as a system
caller audited as the extraction of that permit, stages the mapped and pseudonymised rows once,
measures and reduces the re-identification risk, then writes the extract with the spec's engine
(DuckDB or Spark) and records in the record store which patients went into which project under
which pseudonym. ``projects_using`` gives a patient the projects whose extracts included them;
``rekey`` replaces a project's pseudonym key.
"""

from __future__ import annotations

import csv
import gc
import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.ipc as ipc  # type: ignore[import-untyped]
from sqlalchemy import Engine, insert, select

from carnet.caller import Kind, Principal, RequestContext
from carnet.crypto.service import CryptoService
from carnet.db.instants import stamp, utc_now
from carnet.fhir.service import FhirService
from carnet.hub.omop.canonical import extract_hash
from carnet.hub.omop.cdm import TABLES
from carnet.hub.omop.engines import engine_named, release_sql, write_suppressed
from carnet.hub.omop.mapping import SOURCE_TYPES
from carnet.hub.omop.models import hub_extraction, hub_extraction_person
from carnet.hub.omop.optout import OptOutSource, research_opted_out
from carnet.hub.omop.risk import check_quasi_identifiers, protect
from carnet.hub.omop.spec import OMOP_TABLES, ExtractionResult, ExtractionSpec
from carnet.hub.omop.staging import QI_TABLE, Staged, Stager
from carnet.hub.omop.vocabulary import Vocabulary, load_athena
from carnet.private_files import private_dir
from carnet.settings import Settings

log = logging.getLogger("carnet.hub")
READ_BATCH = 2000
UNMAPPED_REPORT = "unmapped_codes.csv"


class ExtractionServices(Protocol):
    """What the extraction uses of the application's services (carnet.app.Services)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def crypto(self) -> CryptoService: ...
    @property
    def fhir(self) -> FhirService: ...
    @property
    def research_optout(self) -> OptOutSource: ...


class ExtractionError(ValueError):
    """The spec cannot be extracted as given (unknown table or column, bad threshold)."""


def extraction_context(ctx: RequestContext, permit_id: str) -> RequestContext:
    """The system caller every read of an extraction runs as: read-only system scopes, named in
    the audit log (and in each patient's access history) as the extraction of this permit."""
    principal = Principal(
        Kind.BACKEND,
        f"hub-extraction:{permit_id}",
        client_id="carnet-hub",
        scopes=frozenset({"system/*.rs"}),
    )
    return RequestContext(principal, f"hub-extraction:{permit_id}", ctx.source, "research")


def released_columns(spec: ExtractionSpec) -> dict[str, tuple[str, ...]]:
    """The columns of each released table, in CDM order; the row key is always kept."""
    unknown = sorted(spec.tables - OMOP_TABLES)
    if unknown:
        raise ExtractionError(f"unknown OMOP tables {unknown}")
    stray = sorted(set(spec.columns) - spec.tables)
    if stray:
        raise ExtractionError(f"columns given for tables not extracted: {stray}")
    out: dict[str, tuple[str, ...]] = {}
    for table in sorted(spec.tables):
        cdm = TABLES[table]
        wanted = spec.columns.get(table)
        if wanted is not None:
            bad = sorted(wanted - set(cdm.column_names))
            if bad:
                raise ExtractionError(f"{table} has no columns {bad} in CDM 5.4")
        out[table] = tuple(
            c for c in cdm.column_names if wanted is None or c in wanted or c == cdm.key
        )
    return out


def _check(spec: ExtractionSpec) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    if spec.k_threshold < 1:
        raise ExtractionError("k_threshold must be at least 1")
    if spec.dates not in ("shift", "year", "month", "exact"):
        raise ExtractionError(f"unknown date handling {spec.dates!r}")
    if spec.engine not in ("duckdb", "spark"):
        raise ExtractionError(f"unknown engine {spec.engine!r}")
    if not spec.project_id or len(spec.project_id) > 64 or "/" in spec.project_id:
        raise ExtractionError("project_id must be 1 to 64 characters, without '/'")
    try:
        qis = check_quasi_identifiers(spec.quasi_identifiers)
    except ValueError as exc:
        raise ExtractionError(str(exc)) from None
    return released_columns(spec), qis


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while the rows are read and staged: they are
    millions of small objects kept to the end and holding no cycles, which the collector would
    otherwise walk again and again (30 to 45 % of the read's time, measured). Restored as it was.
    It is process-wide: extractions and the catalogue's count run from the CLI, not the server."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def extract(
    services: ExtractionServices,
    ctx: RequestContext,
    spec: ExtractionSpec,
    *,
    vocabulary: Vocabulary | None = None,
    spark_master: str | None = None,
    timings: dict[str, float] | None = None,
) -> ExtractionResult:
    """Extract the permit's tables and columns of every person who has not opted out.

    ``vocabulary`` defaults to the Athena download of setting ``hub_athena_dir``, or none
    (concept 0, source values kept, unmapped codes reported); ``spark_master`` to setting
    ``hub_spark_master``. Nothing is written to ``output_dir``
    but the extract and its reports (unmapped codes, risk, run metadata); when the risk report
    blocks the release, the extract itself is not written. ``timings`` (benchmarks) receives
    the seconds spent reading and staging, and releasing.
    """
    started = time.perf_counter()
    columns, qis = _check(spec)
    settings = services.settings
    if vocabulary is None:
        try:
            athena = settings.hub_athena_dir
            vocabulary = load_athena(athena) if athena else Vocabulary()
        except ValueError as exc:
            raise ExtractionError(f"setting hub_athena_dir: {exc}") from None
    spark_master = spark_master or settings.hub_spark_master
    extraction_id = str(uuid.uuid4())
    extraction_instant = utc_now()  # the opt-outs are honoured as they stood then
    with services.engine.begin() as conn:
        pseudonyms = services.crypto.project_keys.pseudonyms(conn, spec.project_id)
    stager = Stager(
        pseudonyms,
        vocabulary,
        spec.dates,
        lambda pids: research_opted_out(services, pids, extraction_instant),
    )
    system_ctx = extraction_context(ctx, spec.permit_id)
    staging = private_dir(services.settings.data_dir / "hub" / "staging" / extraction_id)
    try:
        with collector_paused():
            with services.fhir.session(system_ctx, "export", None, None) as session:
                for batch in session.current_batches(
                    "export", SOURCE_TYPES, batch=READ_BATCH, inflate=False
                ):
                    stager.add(batch)
            staged = stager.finish(staging)
        staged_at = time.perf_counter()
        result = _release(
            services,
            spec,
            columns,
            qis,
            staged,
            vocabulary,
            extraction_id,
            pseudonyms.generation,
            spark_master,
            timings,
        )
        if timings is not None:
            timings["read_and_stage"] = staged_at - started
            timings["release"] = time.perf_counter() - staged_at
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _release(
    services: ExtractionServices,
    spec: ExtractionSpec,
    columns: dict[str, tuple[str, ...]],
    qis: tuple[str, ...],
    staged: Staged,
    vocabulary: Vocabulary,
    extraction_id: str,
    generation: int,
    spark_master: str,
    timings: dict[str, float] | None,
) -> ExtractionResult:
    risk_files = {
        name: path
        for name, path in staged.files.items()
        if name in ("person", QI_TABLE) or name in spec.tables
    }
    with duckdb.connect() as con:
        protection = protect(con, risk_files, qis, spec.k_threshold)
    report = protection.report
    output = private_dir(spec.output_dir)
    target = output / spec.project_id
    inputs = {name: staged.files[name] for name in columns}
    inputs["suppressed"] = write_suppressed(staged.folder, protection.suppressed)
    releases = {
        t: release_sql(t, cols, generalised=protection.generalised) for t, cols in columns.items()
    }
    engine = engine_named(spec.engine, spark_master=spark_master)
    if report.release_blocked:
        extract_path, output_hash, counts = target, "", dict.fromkeys(columns, 0)
    else:
        writing = time.perf_counter()
        extract_path = engine.write(inputs, releases, target)
        if timings is not None:
            timings["write"] = time.perf_counter() - writing
        output_hash, counts = extract_hash(extract_path, columns)
    unmapped_path = output / UNMAPPED_REPORT
    _write_unmapped(unmapped_path, staged, spec.tables)
    _write_local_concepts(output / "local_concepts.csv", staged)
    result = ExtractionResult(
        extract_path=extract_path,
        row_counts=counts,
        unmapped_codes_report_path=unmapped_path,
        risk_report=report,
        output_hash=output_hash,
        vocabulary_version=vocabulary.version,
        excluded_opted_out=staged.excluded_opted_out,
        dropped_records=dict(sorted(staged.dropped.items())),
    )
    (output / "risk_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (output / "extraction.json").write_text(json.dumps(_run_record(spec, result), indent=2) + "\n")
    _log(services, spec, result, staged, protection.suppressed, extraction_id, generation)
    log.info(
        "extraction %s of permit %s: %s rows, %d people, blocked=%s",
        extraction_id,
        spec.permit_id,
        sum(counts.values()),
        report.records,
        report.release_blocked,
    )
    return result


def _run_record(spec: ExtractionSpec, result: ExtractionResult) -> dict[str, object]:
    """What the researcher may read about the run: no patient, no pseudonym map."""
    return {
        "project_id": spec.project_id,
        "permit_id": spec.permit_id,
        "cdm_version": "5.4",
        "engine": spec.engine,
        "dates": spec.dates,
        "vocabulary_version": result.vocabulary_version,
        "output_hash": result.output_hash,
        "row_counts": dict(result.row_counts),
        "dropped_records": dict(result.dropped_records),
        "excluded_opted_out": result.excluded_opted_out,
        "release_blocked": result.risk_report.release_blocked,
    }


def _write_unmapped(path: Path, staged: Staged, tables: frozenset[str]) -> None:
    """Every code that mapped to concept 0, with how many records carry it (never silently)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["table", "concept_column", "source_system", "source_code", "records"])
        for (table, column, system, code), count in sorted(staged.unmapped.items()):
            if table in tables:
                writer.writerow([table, column, system, code, count])


def _write_local_concepts(path: Path, staged: Staged) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["concept_id", "source_system", "source_code"])
        for (system, code), concept_id in sorted(staged.local_concepts.items(), key=lambda i: i[1]):
            writer.writerow([concept_id, system, code])


def _log(
    services: ExtractionServices,
    spec: ExtractionSpec,
    result: ExtractionResult,
    staged: Staged,
    suppressed: tuple[int, ...],
    extraction_id: str,
    generation: int,
) -> None:
    """The extraction log, the pseudonym map and the encrypted FHIR-id mapping, in the store."""
    released = not result.risk_report.release_blocked
    removed = set(suppressed)
    mapping = staged.source_map
    table = mapping.filter(pc.is_in(mapping["omop_table"], pa.array(sorted(spec.tables))))
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema, options=ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_table(table)
    plain = sink.getvalue().to_pybytes()
    with services.engine.begin() as conn:
        owner = f"hub:{spec.project_id}"
        sealed = services.crypto.data_keys.encrypt(conn, owner, plain, extraction_id.encode())
        conn.execute(
            insert(hub_extraction).values(
                id=extraction_id,
                project_id=spec.project_id,
                permit_id=spec.permit_id,
                engine=spec.engine,
                created_at=stamp(),
                output_hash=result.output_hash,
                vocabulary_version=result.vocabulary_version[:200],
                key_generation=generation,
                row_counts=json.dumps(dict(result.row_counts), sort_keys=True),
                excluded_opted_out=result.excluded_opted_out,
                released=int(released),
                source_map=sealed,
            )
        )
        if released:
            rows = [
                {"extraction_id": extraction_id, "patient_id": p, "person_id": person_id}
                for p, person_id in sorted(staged.persons.items())
                if person_id not in removed
            ]
            if rows:
                conn.execute(insert(hub_extraction_person), rows)


def projects_using(services: ExtractionServices, patient_id: str) -> list[dict[str, str]]:
    """The projects whose released extracts included this patient (for the patient's page):
    project, permit and date only, never the pseudonym."""
    e, p = hub_extraction.c, hub_extraction_person.c
    query = (
        select(e.project_id, e.permit_id, e.created_at)
        .join(hub_extraction_person, p.extraction_id == e.id)
        .where(p.patient_id == patient_id, e.released == 1)
        .order_by(e.created_at)
    )
    with services.engine.connect() as conn:
        return [
            {"project_id": r.project_id, "permit_id": r.permit_id, "extracted_at": r.created_at}
            for r in conn.execute(query)
        ]


def rekey(services: ExtractionServices, project_id: str) -> int:
    """Give a project a new pseudonym key (its next extract's ids are unrelated to earlier
    ones); returns the key's generation."""
    with services.engine.begin() as conn:
        return services.crypto.project_keys.rekey(conn, project_id)


__all__ = ["ExtractionError", "extract", "load_athena", "projects_using", "rekey"]
