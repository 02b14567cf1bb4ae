"""POST /$import: bulk import of NDJSON files the operator placed in the import directory.

The body is a ``Parameters`` resource (``input`` parts with ``type`` and ``url``) or a bulk-import
manifest (``{"input": [{"type": ..., "url": ...}]}``). Every ``url`` must be a ``file:`` URL of a
file inside the ``import_dir`` setting: the server never fetches anything (no http, https or other
scheme). The job runs the same Importer as ``carnet import`` (streaming, resumable, de-duplicating)
in a background thread, with the async pattern of $export (202 + Content-Location, status polling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from carnet.caller import RequestContext
from carnet.fhir.dates import instant, utc_now
from carnet.fhir.errors import FhirError, bad_request
from carnet.fhir.import_files import SUFFIXES, ImportLimits
from carnet.fhir.importer import Importer, ImportInterruptedError
from carnet.fhir.operations.export import StatusReply
from carnet.fhir.operations.jobs import (
    ACTIVE,
    Job,
    JobRunner,
    JobStore,
    job_principal,
    owned_job,
    principal_params,
)
from carnet.fhir.service import FhirService

MAX_LISTED_REJECTIONS = 100


class ImportService:
    """Kick-off, status and cancellation of bulk imports."""

    def __init__(
        self,
        fhir: FhirService,
        jobs: JobStore,
        runner: JobRunner,
        import_dir: Path,
        limits: ImportLimits | None = None,
    ) -> None:
        self.fhir = fhir
        self.jobs = jobs
        self.runner = runner
        self.import_dir = import_dir
        self.limits = limits or ImportLimits()

    def kickoff(self, ctx: RequestContext, request_url: str, body: Any) -> str:
        """Start an import job; every refusal (body, caller, file) is audited and starts nothing.

        The caller's rights are checked before any file is looked at, so that a caller who may
        not import learns nothing of what the import directory holds.
        """
        try:
            inputs = _inputs(body)
        except FhirError as err:
            self.fhir.record_failure(ctx, "import", None, None, err.status)
            raise
        with self.fhir.session(ctx, "import", None, None) as session:
            # An input's type is not enforced on its lines, so its files may hold any type: the
            # caller needs write scopes on every type (and the job then runs as them).
            session.check("import", None, None)
            for res_type, _ in inputs:
                session.check("import", res_type, None)
            files = [self._local_file(url, res_type) for res_type, url in inputs]
        params = {
            "inputs": [{"type": t, "url": u} for t, u in inputs],
            "files": files,
            "principal": principal_params(ctx.principal),
        }
        job_id = self.jobs.create("import", request_url, ctx.actor, params)
        self.runner.submit(job_id, self._run)
        return job_id

    def status(self, job_id: str, ctx: RequestContext) -> StatusReply:
        job = self._job(job_id, ctx, "import-status")
        if job.status in ACTIVE:
            if not self.runner.alive(job_id):  # restarted: resume where the last run stopped
                self.runner.submit(job_id, self._run)
            return StatusReply(202, progress=job.progress or job.status)
        if job.status == "completed":
            return StatusReply(200, manifest=job.result)
        reason = (job.result or {}).get("error", "the import failed")
        return StatusReply(500, error=FhirError.of(500, "exception", str(reason)))

    def cancel(self, job_id: str, ctx: RequestContext) -> None:
        """Stop a running import between batches (what was committed stays) and forget the job."""
        job = self._job(job_id, ctx, "import-cancel")
        if job.status in ACTIVE:
            self.jobs.update(job_id, status="cancelled")
            self.runner.wait(job_id, timeout=30)
        self.jobs.remove(job_id)

    def _job(self, job_id: str, ctx: RequestContext, action: str) -> Job:
        """The caller's job; another caller's is as unknown as a missing one; both audited."""
        return owned_job(self.jobs, self.fhir, "import", job_id, ctx, action)

    def _local_file(self, url: str, res_type: str) -> str:
        parsed = urlparse(url)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise bad_request(
                f"input url '{url[:80]}' is refused: only file: URLs inside the import "
                "directory are accepted (this server makes no outbound calls)",
                "input.url",
            )
        root = self.import_dir.resolve()
        path = Path(unquote(parsed.path))
        path = (root / path).resolve() if not path.is_absolute() else path.resolve()
        if not path.is_relative_to(root):
            raise bad_request(
                f"input url '{url[:80]}' is outside the import directory", "input.url"
            )
        if not path.is_file():
            raise bad_request(f"input url '{url[:80]}' names no file", "input.url")
        if not path.name.endswith(SUFFIXES):
            raise bad_request(f"input url '{url[:80]}' is not a FHIR file", "input.url")
        if res_type and res_type not in self.fhir.definitions.resource_types:
            raise bad_request(f"input type '{res_type[:64]}' is not a resource type", "input.type")
        return str(path)

    def _run(self, job_id: str) -> None:
        job = self.jobs.get(job_id, "import")
        if job is None or job.status not in ACTIVE:
            return
        started = instant(utc_now())
        self.jobs.update(job_id, status="running", transaction_time=started)
        importer = Importer(
            self.fhir,
            # the caller who started the job, with their scopes, not the operator's rights
            ctx=RequestContext(
                actor=job.actor, source="bulk-import", principal=job_principal(job.params)
            ),
            limits=self.limits,
            should_stop=lambda: self.jobs.status(job_id) == "cancelled",
        )
        done: list[str] = []

        def progress(path: Path) -> None:
            done.append(path.name)
            self.jobs.update(job_id, progress=f"{len(done)}/{len(job.params['files'])} files")

        try:
            report = importer.run([Path(f) for f in job.params["files"]], progress=progress)
        except ImportInterruptedError:
            return  # cancelled: committed batches stay, the job row goes
        result = {
            "transactionTime": started,
            "request": job.request,
            "requiresAccessToken": False,
            "output": [
                {"type": res_type, "count": count}
                for res_type, count in sorted(report.by_type.items())
            ],
            "error": (
                [{"type": "OperationOutcome", "count": report.rejected_total}]
                if report.rejected_total
                else []
            ),
            "report": {
                "files": report.files,
                "read": report.read,
                "stored": report.stored,
                "skipped": report.skipped,
                "rejected": report.rejected_total,
                "rejections": [
                    {"source": r.source, "status": r.status, "reason": r.reason[:300]}
                    for r in report.rejected[:MAX_LISTED_REJECTIONS]
                ],
            },
        }
        if self.jobs.status(job_id) == "running":
            self.jobs.update(job_id, status="completed", result=result, progress="done")


def _inputs(body: Any) -> list[tuple[str, str]]:
    """(type, url) pairs from a Parameters resource or a bulk-import manifest."""
    if not isinstance(body, dict):
        raise bad_request("$import expects a Parameters resource or an import manifest")
    pairs: list[tuple[str, str]] = []
    if body.get("resourceType") == "Parameters":
        for param in body.get("parameter") or []:
            if not isinstance(param, dict) or param.get("name") != "input":
                continue
            parts = {p.get("name"): p for p in param.get("part") or [] if isinstance(p, dict)}
            url_part = parts.get("url", {})
            url_value = (
                url_part.get("valueUri") or url_part.get("valueUrl") or url_part.get("valueString")
            )
            type_part = parts.get("type", {})
            type_value = type_part.get("valueCode") or type_part.get("valueString") or ""
            pairs.append((str(type_value), str(url_value or "")))
    elif isinstance(body.get("input"), list):
        for item in body["input"]:
            if isinstance(item, dict):
                pairs.append((str(item.get("type") or ""), str(item.get("url") or "")))
    else:
        raise bad_request("$import expects a Parameters resource or an import manifest")
    if not pairs:
        raise bad_request("$import needs at least one input with a url", "input")
    for _, url in pairs:
        if not url:
            raise bad_request("every input needs a url", "input.url")
    return pairs
