"""Import FHIR data from files: Bundles (.json, .json.gz), NDJSON (.ndjson, .ndjson.gz), folders.

How each kind of Bundle is taken, following the specification's meaning of Bundle.type:
- transaction: executed atomically (all entries or none); batch: entry by entry;
- document and message: stored as one Bundle resource, since they are signed/attested units;
- collection and searchset: each entry's resource stored on its own, all in one transaction;
- transaction-response, batch-response and history: rejected, they record a server's replies
  rather than data to store.
Single resources are stored by id (update) or created when they carry none. NDJSON lines are
stored the same way, in transactions of ``batch_size`` lines.

Files are streamed (NDJSON line by line, gzip decompressed on the fly) within the import limits
(import_files.py), so memory does not grow with file size and a gzip bomb is refused. Imports are
resumable and crash-safe: table ``import_progress`` keeps, per file fingerprint, how far the file
was committed, written in the same transaction as what it counts (each NDJSON batch, a Bundle's
writes, each entry of a batch Bundle); a re-run skips committed lines and completed files. With ``dedupe_shared`` (the default), a POST of an
Organization or Practitioner that carries an identifier becomes a conditional create
(``ifNoneExist=identifier=system|value``), so the copies every Synthea bundle re-posts are stored
once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy import Connection, insert, select, update

from carnet.caller import RequestContext
from carnet.db.engine import writing
from carnet.db.instants import utc_now
from carnet.fhir.errors import FhirError
from carnet.fhir.import_files import (
    ImportLimitError,
    ImportLimits,
    LimitedReader,
    fingerprint,
    patients_first,
)
from carnet.fhir.import_report import MAX_REJECTIONS, ImportReport, Rejection, safe_reason
from carnet.fhir.operations.models import import_progress
from carnet.fhir.record_checks import RecordMoveError
from carnet.fhir.service import FhirService
from carnet.fhir.transactions import run_batch, run_transaction
from carnet.fhir.validation import check_id

__all__ = ["MAX_REJECTIONS", "ImportInterruptedError", "ImportReport", "Importer", "Rejection"]

REPLY_BUNDLES = ("transaction-response", "batch-response", "history")
SHARED_TYPES = ("Organization", "Practitioner")


class ImportInterruptedError(RuntimeError):
    """Raised by ``fail_after_batches`` (crash simulation) or when ``should_stop`` says so."""


def shared_condition(resource: dict[str, Any]) -> str | None:
    """``identifier=system|value`` for an Organization/Practitioner with an identifier."""
    if resource.get("resourceType") not in SHARED_TYPES:
        return None
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            system = quote(str(identifier["system"]), safe=":/")
            value = quote(str(identifier["value"]), safe="")
            return f"identifier={system}|{value}"
    return None


class _Progress:
    """Rows of ``import_progress``: committed lines per file fingerprint."""

    def __init__(self, service: FhirService) -> None:
        self.engine = service.repo.engine

    def get(self, key: str) -> tuple[int, bool]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(import_progress.c.lines_done, import_progress.c.complete).where(
                    import_progress.c.source_key == key
                )
            ).first()
        return (0, False) if row is None else (int(row.lines_done), bool(row.complete))

    def start(self, key: str, name: str) -> None:
        # Reads then writes: under the write lock from BEGIN (an import job beside other writers)
        with writing(self.engine) as conn:
            exists = conn.execute(
                select(import_progress.c.source_key).where(import_progress.c.source_key == key)
            ).first()
            if exists is None:
                conn.execute(
                    insert(import_progress).values(
                        source_key=key,
                        name=name[:255],
                        lines_done=0,
                        complete=False,
                        updated_at=utc_now(),
                    )
                )

    @staticmethod
    def write(conn: Connection, key: str, lines_done: int, complete: bool = False) -> None:
        conn.execute(
            update(import_progress)
            .where(import_progress.c.source_key == key)
            .values(lines_done=lines_done, complete=complete, updated_at=utc_now())
        )

    def finish(self, key: str, lines_done: int | None = None) -> None:
        """Mark a file complete (``lines_done`` None keeps the count already recorded)."""
        with self.engine.begin() as conn:
            if lines_done is None:
                conn.execute(
                    update(import_progress)
                    .where(import_progress.c.source_key == key)
                    .values(complete=True, updated_at=utc_now())
                )
            else:
                self.write(conn, key, lines_done, complete=True)


class Importer:
    """Feeds files through FhirService; never stops at a bad resource, reports it instead.

    ``limits`` bound what one file may decompress to (a file past them is rejected);
    ``resume`` skips what earlier runs committed (False re-reads everything);
    ``dedupe_shared`` turns POSTs of identified Organizations/Practitioners into conditional
    creates; ``fail_after_batches`` raises ImportInterruptedError after that many committed
    batches (a crash, for tests); ``should_stop`` is polled between batches (cancellation).
    """

    def __init__(
        self,
        service: FhirService,
        base: str = "urn:carnet:import",
        batch_size: int = 500,
        *,
        ctx: RequestContext,
        limits: ImportLimits | None = None,
        resume: bool = True,
        dedupe_shared: bool = True,
        fail_after_batches: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.service = service
        self.base = base
        self.batch_size = batch_size
        self.limits = limits or ImportLimits()
        self.resume = resume
        self.dedupe_shared = dedupe_shared
        self.fail_after_batches = fail_after_batches
        self.should_stop = should_stop
        self.ctx = ctx
        self.progress = _Progress(service)
        self._batches = 0
        # Patient lines this run refused: the lines naming the same id are that person's items
        # (two sources both calling their patient p1), never the stored p1's (NDJSON).
        self.refused_patients: set[str] = set()

    def run(
        self, files: list[Path], progress: Callable[[Path], None] | None = None
    ) -> ImportReport:
        report = ImportReport()
        for path in patients_first(files):
            report.files += 1
            key = fingerprint(path)
            done, complete = self.progress.get(key) if self.resume else (0, False)
            if complete:
                report.skipped += max(done, 1)
            else:
                self.progress.start(key, path.name)
                if path.name.endswith((".ndjson", ".ndjson.gz")):
                    self._ndjson(path, key, done, report)
                else:
                    if self._json(path, key, done, report):
                        self.progress.finish(key)
                    self._committed()
            if progress:
                progress(path)
        return report

    def _committed(self) -> None:
        self._batches += 1
        if self.fail_after_batches is not None and self._batches >= self.fail_after_batches:
            raise ImportInterruptedError(f"interrupted after {self._batches} batches")
        if self.should_stop is not None and self.should_stop():
            raise ImportInterruptedError("import cancelled")

    # -- JSON files -------------------------------------------------------------------------------

    def _json(self, path: Path, key: str, done: int, report: ImportReport) -> bool:
        """Import one JSON file; True when its content was committed (or nothing can be).

        What is stored commits in one transaction with the file's progress row (complete, or for
        a batch Bundle the number of entries done), so a crash at any instant leaves either both
        or neither, and a re-run never stores a Bundle twice.
        """
        try:
            with LimitedReader(path, self.limits) as reader:
                raw = reader.read_document()
        except ImportLimitError as exc:
            # Not marked complete: with a higher limit, a re-run imports it.
            report.reject(Rejection(path.name, 413, str(exc)))
            return False
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            report.reject(Rejection(path.name, 400, f"not valid JSON: {exc.msg}"))
            return True
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            ok = self._bundle(path.name, doc, key, done, report)
        else:
            report.read += 1
            ok = self._store([(path.name, doc, None)], key, report)
        return ok

    def _bundle(
        self, name: str, bundle: dict[str, Any], key: str, done: int, report: ImportReport
    ) -> bool:
        kind = bundle.get("type")
        entries = bundle.get("entry") or []
        if kind in ("transaction", "batch"):
            if self.dedupe_shared:
                _dedupe_entries(entries)
            try:
                self.service.validator.validate_bundle_shell(bundle)
                if kind == "transaction":
                    report.read += len(entries)
                    response = run_transaction(
                        self.service,
                        bundle,
                        self.base,
                        self.ctx,
                        record_progress=_completes(key),
                        keep_records=True,
                    )
                else:  # each entry commits on its own, with the count of entries done
                    report.read += len(entries) - done
                    report.skipped += done
                    entries = entries[done:]
                    response = run_batch(
                        self.service,
                        {**bundle, "entry": entries},
                        self.base,
                        self.ctx,
                        record_progress=lambda conn, n: _Progress.write(conn, key, done + n),
                        keep_records=True,
                    )
            except FhirError as err:
                report.reject(Rejection.of(f"{name} ({kind})", err))
                # a conflict is worth a retry; an item moving record is not a passing conflict
                return err.status < 500 and (err.status != 409 or isinstance(err, RecordMoveError))
            for i, item in enumerate(response["entry"]):
                status = item["response"]["status"]
                if status.startswith("2"):
                    request = entries[i].get("request", {})
                    if request.get("method") in ("POST", "PUT"):
                        report.count(str(request.get("url", "")).split("/")[0].split("?")[0])
                else:
                    reason = safe_reason(
                        (str(x.get("code", "")), str((x.get("expression") or [""])[0]))
                        for x in item["response"].get("outcome", {}).get("issue", [])
                    )
                    report.reject(Rejection(f"{name} entry {done + i}", int(status[:3]), reason))
            return True
        if kind in ("document", "message"):
            report.read += 1
            return self._store([(name, bundle, None)], key, report)
        if kind in ("collection", "searchset"):
            items = [
                (f"{name} entry {i}", e["resource"], e.get("fullUrl"))
                for i, e in enumerate(entries)
                if isinstance(e, dict)
                and isinstance(e.get("resource"), dict)
                and not (kind == "searchset" and e.get("search", {}).get("mode") == "outcome")
            ]
            report.read += len(items)
            return self._store(items, key, report)
        report.read += 1
        if kind in REPLY_BUNDLES:
            reason = f"a {kind} Bundle records a server's replies, not data to store"
        else:
            reason = f"unknown Bundle.type '{kind}'"
        report.reject(Rejection(name, 422, reason))
        return True

    def _store(
        self, items: list[tuple[str, Any, str | None]], key: str, report: ImportReport
    ) -> bool:
        """Store resources by id (or create them) in one transaction; bad ones are set aside first.

        Each item is (where it came from, the resource, its fullUrl if any, so that references
        between entries of one collection resolve). The file is marked complete in the same
        transaction.
        """
        good = self._valid(items, report)
        while good:
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [self._entry(resource, full_url) for _, resource, full_url in good],
            }
            try:
                run_transaction(
                    self.service,
                    bundle,
                    self.base,
                    self.ctx,
                    record_progress=_completes(key),
                    keep_records=True,
                )
            except RecordMoveError as err:
                # That item alone is set aside (as an NDJSON line would be); the rest goes on.
                at_fault = _entry_index(err.at)
                if at_fault is None or at_fault >= len(good):
                    report.reject(Rejection.of(good[0][0] + " (batch)", err))
                    return True
                source, resource, _ = good.pop(at_fault)
                # located in the file's own terms: ``ServiceRequest.subject``
                res_type = resource["resourceType"]
                issues = (
                    (i.code, res_type + i.expression.removeprefix(err.at)) for i in err.issues
                )
                report.reject(Rejection(source, err.status, safe_reason(issues)))
                continue
            except FhirError as err:
                report.reject(Rejection.of(good[0][0] + " (batch)", err))
                return err.status < 500 and err.status != 409
            for _, resource, _ in good:
                report.count(resource["resourceType"])
            return True
        return True

    def _valid(
        self, items: list[tuple[str, Any, str | None]], report: ImportReport
    ) -> list[tuple[str, dict[str, Any], str | None]]:
        good: list[tuple[str, dict[str, Any], str | None]] = []
        for source, resource, full_url in items:
            try:
                self.service.validator.validate(resource)
                if resource.get("id"):
                    check_id(str(resource["id"]))
            except FhirError as err:
                report.reject(Rejection.of(source, err))
                self._refused(resource)
                continue
            good.append((source, resource, full_url))
        return good

    def _entry(self, resource: dict[str, Any], full_url: str | None) -> dict[str, Any]:
        res_type = resource["resourceType"]
        entry: dict[str, Any] = {"resource": resource}
        if full_url:
            entry["fullUrl"] = full_url
        if resource.get("id"):
            entry["request"] = {"method": "PUT", "url": f"{res_type}/{resource['id']}"}
        else:
            entry["request"] = {"method": "POST", "url": res_type}
            condition = shared_condition(resource) if self.dedupe_shared else None
            if condition:
                entry["request"]["ifNoneExist"] = condition
        return entry

    def _refused(self, resource: Any) -> None:
        """Remember a refused Patient line's id (see ``refused_patients``)."""
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            self.refused_patients.add(str(resource.get("id") or ""))

    # -- NDJSON -----------------------------------------------------------------------------------

    def _ndjson(self, path: Path, key: str, skip: int, report: ImportReport) -> None:
        """Stream the file; each batch commits with its progress row (exactly-once on resume).

        A file past the import limits is rejected where it broke them: the lines before are
        stored, and it is not marked complete (a re-run with a higher limit goes on from there).
        """
        batch: list[tuple[str, Any, str | None]] = []
        lineno = 0
        try:
            with LimitedReader(path, self.limits) as reader:
                for lineno, line in enumerate(reader.lines(), start=1):
                    if lineno <= skip:
                        report.skipped += 1 if line.strip() else 0
                        continue
                    _parse_line(f"{path.name}:{lineno}", line, batch, report)
                    if len(batch) >= self.batch_size:
                        self._store_lines(batch, key, lineno, report)
                        batch = []
        except ImportLimitError as exc:
            if batch:
                self._store_lines(batch, key, lineno, report)
            report.reject(Rejection(path.name, 413, str(exc)))
            return
        if lineno > skip:
            self._store_lines(batch, key, lineno, report)
        self.progress.finish(key, lineno)

    def _store_lines(
        self,
        items: list[tuple[str, Any, str | None]],
        key: str,
        lines_done: int,
        report: ImportReport,
    ) -> None:
        """One transaction: the valid resources and the file's new committed-line count."""
        good = self._valid(items, report)
        try:
            self._write(good, key, lines_done)
        except FhirError:
            # One resource spoiled the batch: store the others one by one, set it aside. Each
            # commits with its own line as the progress, so a crash here stores none twice.
            for item in good:
                try:
                    self._write([item], key, _line_number(item[0]))
                except FhirError as err:
                    report.reject(Rejection.of(item[0], err))
                    self._refused(item[1])
                else:
                    report.count(item[1]["resourceType"])
            self._write([], key, lines_done)
        else:
            for _, resource, _ in good:
                report.count(resource["resourceType"])
        self._committed()

    def _write(
        self, good: list[tuple[str, dict[str, Any], str | None]], key: str, lines_done: int
    ) -> None:
        """Store NDJSON resources and the file's committed-line count in one transaction."""
        service, ctx = self.service, self.ctx
        with service.session(ctx, "import", None, None) as session:
            unit = session.unit
            session.expected.refused = self.refused_patients
            unit.prefetch_current(
                [(r["resourceType"], str(r["id"])) for _, r, _ in good if r.get("id")]
            )
            for _, resource, _ in good:
                res_type = resource["resourceType"]
                if resource.get("id"):
                    session.update(res_type, str(resource["id"]), resource, None, keep_record=True)
                else:
                    condition = shared_condition(resource) if self.dedupe_shared else None
                    session.create(res_type, resource, condition)
            unit.before_commit.append(lambda conn: _Progress.write(conn, key, lines_done))


def _parse_line(
    source: str, line: bytes, batch: list[tuple[str, Any, str | None]], report: ImportReport
) -> None:
    """Add an NDJSON line's resource to ``batch`` (a blank line is nothing, bad JSON rejected)."""
    if not line.strip():
        return
    report.read += 1
    try:
        batch.append((source, orjson.loads(line), None))
    except orjson.JSONDecodeError as exc:
        report.reject(Rejection(source, 400, f"not valid JSON: {exc.msg}"))


def _line_number(source: str) -> int:
    """The line of an NDJSON item, from its source ``<file name>:<line>``."""
    return int(source.rsplit(":", 1)[1])


def _entry_index(at: str) -> int | None:
    """The entry number in ``Bundle.entry[3].resource`` (None for another place)."""
    found = re.match(r"Bundle\.entry\[(\d+)\]", at)
    return int(found[1]) if found else None


def _completes(key: str) -> Callable[[Connection, int], None]:
    """A callback, run inside a Bundle's transaction, that marks its JSON file imported."""
    return lambda conn, _entries: _Progress.write(conn, key, 1, complete=True)


def _dedupe_entries(entries: list[Any]) -> None:
    """POSTs of identified Organizations/Practitioners become conditional creates."""
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        request = entry.get("request")
        if (
            isinstance(request, dict)
            and request.get("method") == "POST"
            and not request.get("ifNoneExist")
        ):
            condition = shared_condition(entry["resource"])
            if condition:
                request["ifNoneExist"] = condition
