"""Import FHIR data from files: Bundles (.json, .json.gz), NDJSON (.ndjson, .ndjson.gz), folders.

How each kind of Bundle is taken, following the specification's meaning of Bundle.type:
- transaction: executed atomically (all entries or none); batch: entry by entry;
- document and message: stored as one Bundle resource, since they are signed/attested units;
- collection and searchset: each entry's resource stored on its own, all in one transaction;
- transaction-response, batch-response and history: rejected, they record a server's replies
  rather than data to store.
Single resources are stored by id (update) or created when they carry none. NDJSON lines are
stored the same way, in transactions of ``batch_size`` lines.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import orjson

from carnet.fhir.errors import FhirError
from carnet.fhir.service import FhirService
from carnet.fhir.transactions import run_batch, run_transaction

SUFFIXES = (".json", ".json.gz", ".ndjson", ".ndjson.gz")
REPLY_BUNDLES = ("transaction-response", "batch-response", "history")


@dataclass
class Rejection:
    source: str  # file name and location inside it
    status: int
    reason: str


@dataclass
class ImportReport:
    files: int = 0
    read: int = 0
    stored: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)

    def count(self, res_type: str, n: int = 1) -> None:
        self.stored += n
        self.by_type[res_type] = self.by_type.get(res_type, 0) + n


def discover(paths: list[Path]) -> list[Path]:
    """Files to import, folders expanded, in a stable order; unknown suffixes are an error."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            )
        elif path.is_file():
            if not path.name.endswith(SUFFIXES):
                raise ValueError(f"{path}: not a .json, .json.gz, .ndjson or .ndjson.gz file")
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return found


def _open(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


class Importer:
    """Feeds files through FhirService; never stops at a bad resource, reports it instead."""

    def __init__(
        self, service: FhirService, base: str = "urn:carnet:import", batch_size: int = 500
    ) -> None:
        self.service = service
        self.base = base
        self.batch_size = batch_size

    def run(
        self, files: list[Path], progress: Callable[[Path], None] | None = None
    ) -> ImportReport:
        report = ImportReport()
        for path in files:
            report.files += 1
            if path.name.endswith((".ndjson", ".ndjson.gz")):
                self._ndjson(path, report)
            else:
                self._json(path, report)
            if progress:
                progress(path)
        return report

    def _json(self, path: Path, report: ImportReport) -> None:
        with _open(path) as handle:
            raw = handle.read()
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            report.rejected.append(Rejection(path.name, 400, f"not valid JSON: {exc.msg}"))
            return
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            self._bundle(path.name, doc, report)
        else:
            report.read += 1
            self._store([(path.name, doc, None)], report)

    def _bundle(self, name: str, bundle: dict[str, Any], report: ImportReport) -> None:
        kind = bundle.get("type")
        entries = bundle.get("entry") or []
        if kind in ("transaction", "batch"):
            report.read += len(entries)
            run = run_transaction if kind == "transaction" else run_batch
            try:
                self.service.validator.validate_bundle_shell(bundle)
                response = run(self.service, bundle, self.base)
            except FhirError as err:
                report.rejected.append(Rejection(f"{name} ({kind})", err.status, str(err)))
                return
            for i, item in enumerate(response["entry"]):
                status = item["response"]["status"]
                if status.startswith("2"):
                    request = entries[i].get("request", {})
                    if request.get("method") in ("POST", "PUT"):
                        report.count(str(request.get("url", "")).split("/")[0].split("?")[0])
                else:
                    reason = "; ".join(
                        x.get("diagnostics", "")
                        for x in item["response"].get("outcome", {}).get("issue", [])
                    )
                    report.rejected.append(Rejection(f"{name} entry {i}", int(status[:3]), reason))
        elif kind in ("document", "message"):
            report.read += 1
            self._store([(name, bundle, None)], report)
        elif kind in ("collection", "searchset"):
            items = [
                (f"{name} entry {i}", e["resource"], e.get("fullUrl"))
                for i, e in enumerate(entries)
                if isinstance(e, dict)
                and isinstance(e.get("resource"), dict)
                and not (kind == "searchset" and e.get("search", {}).get("mode") == "outcome")
            ]
            report.read += len(items)
            self._store(items, report)
        elif kind in REPLY_BUNDLES:
            report.read += 1
            report.rejected.append(
                Rejection(
                    name, 422, f"a {kind} Bundle records a server's replies, not data to store"
                )
            )
        else:
            report.read += 1
            report.rejected.append(Rejection(name, 422, f"unknown Bundle.type '{kind}'"))

    def _ndjson(self, path: Path, report: ImportReport) -> None:
        batch: list[tuple[str, Any, str | None]] = []
        with _open(path) as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                report.read += 1
                try:
                    batch.append((f"{path.name}:{lineno}", orjson.loads(line), None))
                except orjson.JSONDecodeError as exc:
                    report.rejected.append(
                        Rejection(f"{path.name}:{lineno}", 400, f"not valid JSON: {exc.msg}")
                    )
                if len(batch) >= self.batch_size:
                    self._store(batch, report)
                    batch = []
        if batch:
            self._store(batch, report)

    def _store(self, items: list[tuple[str, Any, str | None]], report: ImportReport) -> None:
        """Store resources by id (or create them) in one transaction; bad ones are set aside first.

        Each item is (where it came from, the resource, its fullUrl if any, so that references
        between entries of one collection resolve).
        """
        good: list[tuple[str, dict[str, Any], str | None]] = []
        for source, resource, full_url in items:
            try:
                self.service.validator.validate(resource)
            except FhirError as err:
                report.rejected.append(Rejection(source, err.status, str(err)))
                continue
            good.append((source, resource, full_url))
        if not good:
            return
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [_entry(resource, full_url) for _, resource, full_url in good],
        }
        try:
            run_transaction(self.service, bundle, self.base)
        except FhirError as err:
            report.rejected.append(Rejection(good[0][0] + " (batch)", err.status, str(err)))
            return
        for _, resource, _ in good:
            report.count(resource["resourceType"])


def _entry(resource: dict[str, Any], full_url: str | None) -> dict[str, Any]:
    res_type = resource["resourceType"]
    entry: dict[str, Any] = {"resource": resource}
    if full_url:
        entry["fullUrl"] = full_url
    if resource.get("id"):
        entry["request"] = {"method": "PUT", "url": f"{res_type}/{resource['id']}"}
    else:
        entry["request"] = {"method": "POST", "url": res_type}
    return entry
