"""FHIR Bulk Data $export (system, Patient and Group level), with the async request pattern.

A kick-off creates a ``bulk_job`` row and starts a thread that reads the current resources through
the repository in one transaction (a consistent snapshot as of ``transactionTime``) and writes one
NDJSON file per type under ``<export_dir>/<job>/``.

Export files hold health data, so they are encrypted at rest: each file is a sequence of records
(4-byte big-endian length, then AES-256-GCM nonce and ciphertext of up to ``batch`` NDJSON lines)
under a data key of owner ``export:<job>`` held by carnet.crypto, with ``<job>/<file>/<n>`` as
associated data. Files are decrypted while they are served. Deleting a job (``DELETE`` on its
status URL, or expiry after ``export_retention_hours``) removes its files and destroys its key.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from carnet.caller import RequestContext, Visibility
from carnet.fhir.dates import instant, utc_now
from carnet.fhir.errors import FhirError, bad_request, not_found
from carnet.fhir.operations.everything import parse_since, parse_types
from carnet.fhir.operations.jobs import (
    ACTIVE,
    Job,
    JobRunner,
    JobStore,
    job_principal,
    owned_job,
    principal_params,
)
from carnet.fhir.service import FhirService, FhirSession
from carnet.fhir.store_scan import iter_current
from carnet.private_files import open_private, private_dir

NDJSON_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
UNSUPPORTED = ("_typeFilter", "_elements", "patient", "includeAssociatedData")
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class StatusReply:
    """What a status poll answers: 202 with progress, 200 with the manifest, or an error."""

    status: int
    progress: str | None = None
    manifest: dict[str, Any] | None = None
    error: FhirError | None = None
    expires: datetime | None = None  # when a completed export's files are erased


class ExportService:
    """Kick-off, status, cancellation and file serving of bulk exports."""

    def __init__(
        self,
        fhir: FhirService,
        jobs: JobStore,
        runner: JobRunner,
        export_dir: Path,
        retention: timedelta,
        batch: int = 500,
    ) -> None:
        self.fhir = fhir
        self.jobs = jobs
        self.runner = runner
        self.export_dir = export_dir
        self.retention = retention
        self.batch = batch

    # -- kick-off -------------------------------------------------------------------------------

    def kickoff(
        self,
        ctx: RequestContext,
        base: str,
        request_url: str,
        level: str,
        params: list[tuple[str, str]],
        group_id: str | None = None,
    ) -> str:
        """Validate the request, record the job and start it; returns the job id."""
        self.purge_expired()
        query = dict(params)
        for name in UNSUPPORTED:
            if name in query:
                raise FhirError.of(400, "not-supported", f"{name} is not supported", name)
        fmt = query.get("_outputFormat")
        if fmt is not None and fmt not in NDJSON_FORMATS:
            raise bad_request(
                f"_outputFormat '{fmt[:60]}' is not supported (application/fhir+ndjson only)",
                "_outputFormat",
            )
        types = parse_types(self.fhir, [v for k, v in params if k == "_type"])
        since = parse_since(query.get("_since"))
        patients: list[str] | None = None
        with self.fhir.session(ctx, "export", "Group" if group_id else None, group_id) as session:
            unit = session.unit
            types = self._checked_types(session, types)
            if group_id is not None:
                # The Group's members are its content: the caller must be allowed to read it
                # (its type first, so an unknown Group answers alike), as for a plain read.
                session.check("read", "Group", group_id)
                group = unit.current("Group", group_id)
                if group is None or group.deleted or group.body is None:
                    raise not_found(f"Group/{group_id} is not known")
                session.check_resource("read", group)
                patients = _members(group.body)
                session.record("read", "Group", [group])
                session.record("export", "Group", [group])
        job_params = {
            "level": level,
            "types": types,
            "since": since,
            "patients": patients,
            "base": base,
            "principal": principal_params(ctx.principal),
        }
        job_id = self.jobs.create("export", request_url, ctx.actor, job_params)
        self.runner.submit(job_id, self._run)
        return job_id

    def _checked_types(self, session: FhirSession, asked: list[str] | None) -> list[str] | None:
        """The types the job will export, each checked against the caller's rights and scopes
        (a ``_type`` outside them is refused here, 403); without ``_type``, every type the
        caller may read (None: all of them)."""
        types = asked
        if types is None:
            vis = session.visibility("export")
            types = None if vis is None else _readable_types(vis)
        if not types:  # every type, or none at all: the check on all types decides
            session.check("export", None, None)
            return None
        for res_type in types:
            session.check("export", res_type, None)
        return types

    # -- status ---------------------------------------------------------------------------------

    def status(self, job_id: str, ctx: RequestContext) -> StatusReply:
        job = self._job(job_id, ctx, "export-status")
        if job.status in ACTIVE:
            if not self.runner.alive(job_id):  # the process that ran it is gone: start again
                self.runner.submit(job_id, self._run)
            return StatusReply(202, progress=job.progress or job.status)
        if job.status == "completed":
            # purge_expired erases a finished job once its last update is older than retention
            return StatusReply(200, manifest=job.result, expires=job.updated_at + self.retention)
        reason = (job.result or {}).get("error", "the export failed")
        return StatusReply(500, error=FhirError.of(500, "exception", str(reason)))

    def cancel(self, job_id: str, ctx: RequestContext) -> None:
        """Cancel a running export or delete a finished one (files and key)."""
        job = self._job(job_id, ctx, "export-cancel")
        if job.status in ACTIVE and self.runner.alive(job_id):
            self.jobs.update(job_id, status="cancelled")
            self.runner.wait(job_id, timeout=30)
        self._erase(job_id)

    def purge_expired(self) -> int:
        """Erase finished exports older than the retention period; returns how many."""
        old = self.jobs.finished_before("export", datetime.now(UTC) - self.retention)
        for job_id in old:
            self._erase(job_id)
        return len(old)

    # -- files ----------------------------------------------------------------------------------

    def open_file(self, ctx: RequestContext, job_id: str, name: str) -> Iterator[bytes]:
        """The decrypted NDJSON of one output file, record by record."""
        job = self._job(job_id, ctx, "export-file", audit_success=False)  # with its rule, below
        res_type = _file_type(job, name) if _safe_name(name) else None
        path = self.export_dir / job_id / name
        with self.fhir.session(ctx, "export-file", res_type, None) as session:
            if job.status != "completed" or res_type is None or not path.is_file():
                missing = not_found(f"no file '{name[:80]}' in export {job_id}")
                raise FhirError(404, missing.issues, rule="bulk-file-unknown")  # audited too
            # the caller's scopes today, on this file's type (a token may have narrowed since)
            session.check("export-file", res_type, None)
            session.record("export-file", res_type, [])
        return self._records(job_id, name, path)

    def _records(self, job_id: str, name: str, path: Path) -> Iterator[bytes]:
        data_keys = self.fhir.repo.data_keys
        owner = _owner(job_id)
        with path.open("rb") as handle:
            index = 0
            while header := handle.read(_LENGTH.size):
                (length,) = _LENGTH.unpack(header)
                blob = handle.read(length)
                with self.fhir.repo.unit(write=False) as unit:
                    yield data_keys.decrypt(unit.conn, owner, blob, _aad(job_id, name, index))
                index += 1

    # -- the job itself -------------------------------------------------------------------------

    def _run(self, job_id: str) -> None:
        job = self.jobs.get(job_id, "export")
        if job is None or job.status not in ACTIVE:
            return
        params = job.params
        # The job runs as the caller who started it: their scopes, rules and visibility flags.
        ctx = RequestContext(actor=job.actor, source="bulk-export", principal=job_principal(params))
        folder = self.export_dir / job_id
        shutil.rmtree(folder, ignore_errors=True)  # a restarted job starts from scratch
        private_dir(folder)
        started = instant(utc_now())
        self.jobs.update(job_id, status="running", transaction_time=started, progress="0")
        owner = _owner(job_id)
        data_keys = self.fhir.repo.data_keys
        with self.fhir.repo.unit() as unit:  # create the job's data key in its own short commit
            data_keys.encrypt(unit.conn, owner, b"", b"key-check")
        writers: dict[str, _Writer] = {}
        done = 0
        patients = params["patients"]
        checked: set[str] = set()
        try:
            # One read snapshot for the whole export (it does not hold SQLite's write lock);
            # each batch is checked and recorded in its own short interaction.
            with self.fhir.repo.unit(write=False) as snapshot:
                batches = iter_current(
                    snapshot, params["types"], params["since"], patients, batch=self.batch
                )
                for batch in batches:
                    if params["level"] != "system":
                        batch = [r for r in batch if r.patient_id is not None]
                    with self.fhir.session(ctx, "export", None, None) as session:
                        unit = session.unit
                        vis = session.visibility("export")
                        batch = session.visible_only(vis, batch)
                        for res_type in {r.res_type for r in batch} - checked:
                            session.check("export", res_type, None)
                            checked.add(res_type)
                        session.record("export", None, batch)
                    by_type: dict[str, list[bytes]] = {}
                    for stored in batch:
                        by_type.setdefault(stored.res_type, []).append(orjson.dumps(stored.body))
                    for res_type, lines in by_type.items():
                        writer = writers.get(res_type)
                        if writer is None:
                            writer = writers[res_type] = _Writer(folder, job_id, res_type)
                        plain, aad = writer.next(lines)
                        writer.write(data_keys.encrypt(snapshot.conn, owner, plain, aad))
                    done += len(batch)
                    if self.jobs.status(job_id) == "cancelled":
                        return
                    self.jobs.update(job_id, progress=f"{done} resources")
        finally:
            for writer in writers.values():
                writer.close()
        base = params["base"]
        manifest = {
            "transactionTime": started,
            "request": job.request,
            # downloads need the owner's bearer token (open_file checks the caller and scopes)
            "requiresAccessToken": True,
            "output": [
                {
                    "type": res_type,
                    "url": f"{base}/$export-file/{job_id}/{writer.name}",
                    "count": writer.count,
                }
                for res_type, writer in sorted(writers.items())
            ],
            "error": [],
        }
        if self.jobs.status(job_id) == "running":
            self.jobs.update(job_id, status="completed", result=manifest, progress="done")

    def _job(
        self, job_id: str, ctx: RequestContext, action: str, *, audit_success: bool = True
    ) -> Job:
        """The caller's job; another caller's is as unknown as a missing one; both audited."""
        return owned_job(
            self.jobs, self.fhir, "export", job_id, ctx, action, audit_success=audit_success
        )

    def _erase(self, job_id: str) -> None:
        shutil.rmtree(self.export_dir / job_id, ignore_errors=True)
        with self.fhir.repo.unit() as unit:
            self.fhir.repo.data_keys.destroy(unit.conn, _owner(job_id))
        self.jobs.remove(job_id)


class _Writer:
    """One output file: framed, encrypted records of NDJSON lines."""

    def __init__(self, folder: Path, job_id: str, res_type: str) -> None:
        self.name = f"{res_type}.ndjson"
        self.job_id = job_id
        self.count = 0
        self.records = 0
        self.handle: IO[bytes] = open_private(folder / self.name)

    def next(self, lines: list[bytes]) -> tuple[bytes, bytes]:
        """Plaintext and associated data of the next record."""
        aad = _aad(self.job_id, self.name, self.records)
        self.records += 1
        self.count += len(lines)
        return b"\n".join(lines) + b"\n", aad

    def write(self, blob: bytes) -> None:
        self.handle.write(_LENGTH.pack(len(blob)))
        self.handle.write(blob)

    def close(self) -> None:
        self.handle.close()


PARAMETER_VALUES = ("valueString", "valueCode", "valueInstant", "valueDateTime", "valueUri")


def parameters_to_params(body: Any) -> list[tuple[str, str]]:
    """The kick-off parameters of a ``POST $export`` (Bulk Data v2): a Parameters resource
    whose parts carry a string-like value; read as the query parameters of a GET."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("a POST $export takes a Parameters resource", "resourceType")
    params: list[tuple[str, str]] = []
    parts = body.get("parameter") or []
    if not isinstance(parts, list):
        raise bad_request("Parameters.parameter must be a list", "Parameters.parameter")
    for i, part in enumerate(parts):
        where = f"Parameters.parameter[{i}]"
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or not name:
            raise bad_request(f"{where} has no name", f"{where}.name")
        if isinstance(part, dict) and "valueReference" in part:
            raise FhirError.of(400, "not-supported", f"{name} is not supported", f"{where}")
        values = [part[k] for k in PARAMETER_VALUES if isinstance(part, dict) and k in part]
        if len(values) != 1 or not isinstance(values[0], str):
            raise bad_request(f"{where} ({name[:40]}) needs one string value", f"{where}.value")
        params.append((name, values[0]))
    return params


def _readable_types(vis: Visibility) -> list[str] | None:
    """The types a visibility lets its caller read at all; None when some scope covers all."""
    found: set[str] = set()
    for scope in vis.scopes:
        if scope.types is None:
            return None
        found |= scope.types
    if vis.shared_rule is not None:
        if vis.shared_types is None:
            return None
        found |= vis.shared_types
    return sorted(found)


def _file_type(job: Job, name: str) -> str | None:
    """The resource type of one of a completed job's files, from its manifest."""
    for output in (job.result or {}).get("output") or []:
        if str(output.get("url", "")).endswith(f"/{name}"):
            return str(output.get("type"))
    return None


def _members(group: dict[str, Any]) -> list[str]:
    out = []
    for member in group.get("member") or []:
        ref = str((member.get("entity") or {}).get("reference", ""))
        if ref.startswith("Patient/") and not member.get("inactive", False):
            out.append(ref.split("/", 1)[1])
    return out


def _owner(job_id: str) -> str:
    return f"export:{job_id}"


def _aad(job_id: str, name: str, index: int) -> bytes:
    return f"{job_id}/{name}/{index}".encode()


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")
