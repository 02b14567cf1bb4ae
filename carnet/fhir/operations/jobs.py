"""Bulk job state (table ``bulk_job``) and the background threads that run jobs.

The state lives in the database so that a status URL still answers after a restart; a job found
``accepted`` or ``running`` with no thread in this process (the server restarted) is started again.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, delete, insert, select, update

from carnet.caller import Kind, Principal, RequestContext
from carnet.db.instants import utc_now
from carnet.fhir.errors import not_found
from carnet.fhir.operations.models import bulk_job

if TYPE_CHECKING:
    from carnet.fhir.service import FhirService

log = logging.getLogger("carnet.bulk")
ACTIVE = ("accepted", "running")


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str
    request: str
    actor: str
    params: dict[str, Any]
    transaction_time: str | None
    progress: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime  # a finished job's files expire ``export_retention_hours`` after it


class JobStore:
    """Rows of ``bulk_job``; no clinical content goes in them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, kind: str, request: str, actor: str, params: dict[str, Any]) -> str:
        job_id = str(uuid.uuid4())
        now = utc_now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(bulk_job).values(
                    id=job_id,
                    kind=kind,
                    status="accepted",
                    request=request[:2048],
                    actor=actor[:128],
                    params=orjson.dumps(params).decode(),
                    created_at=now,
                    updated_at=now,
                )
            )
        return job_id

    def get(self, job_id: str, kind: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(bulk_job).where(bulk_job.c.id == job_id, bulk_job.c.kind == kind)
            ).first()
        if row is None:
            return None
        return Job(
            id=row.id,
            kind=row.kind,
            status=row.status,
            request=row.request,
            actor=row.actor,
            params=orjson.loads(row.params),
            transaction_time=row.transaction_time,
            progress=row.progress,
            result=orjson.loads(row.result) if row.result else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def update(self, job_id: str, **values: Any) -> None:
        if "result" in values and values["result"] is not None:
            values["result"] = orjson.dumps(values["result"]).decode()
        with self.engine.begin() as conn:
            conn.execute(
                update(bulk_job)
                .where(bulk_job.c.id == job_id)
                .values(**values, updated_at=utc_now())
            )

    def status(self, job_id: str) -> str | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(bulk_job.c.status).where(bulk_job.c.id == job_id)).first()
        return None if found is None else str(found.status)

    def remove(self, job_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(bulk_job).where(bulk_job.c.id == job_id))

    def finished_before(self, kind: str, moment: datetime) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(bulk_job.c.id).where(
                    bulk_job.c.kind == kind,
                    bulk_job.c.status.not_in(ACTIVE),
                    bulk_job.c.updated_at < moment,
                )
            )
            return [r.id for r in rows]


def owned_job(
    store: JobStore,
    fhir: FhirService,
    kind: str,
    job_id: str,
    ctx: RequestContext,
    action: str,
    *,
    audit_success: bool = True,
) -> Job:
    """The caller's own job. Every access is an audit event:
    the owner's (rule ``job:<id>``; ``audit_success`` False when the caller records the access
    itself), and each refusal: another caller's job answers the 404 of a missing one (rule
    ``bulk-job-not-owner``, or ``bulk-job-unknown`` for no such job)."""
    job = store.get(job_id, kind) if _safe_id(job_id) else None
    live = job is not None and job.status != "cancelled"
    if live and job is not None and job.actor == ctx.actor[:128]:
        if audit_success:
            with fhir.session(ctx, action, None, None) as session:
                session.record(action, None, [], ctx=replace(ctx, rule=f"job:{job_id}"))
        return job
    # the job id goes in the event only when it names a real job (not text from the URL)
    rule = f"bulk-job-not-owner job:{job_id}" if live else "bulk-job-unknown"
    fhir.record_failure(replace(ctx, rule=rule), action, None, None, 404)
    raise not_found(f"{kind} job {job_id[:40]} is not known")


def _safe_id(job_id: str) -> bool:
    return bool(job_id) and "/" not in job_id and "\\" not in job_id and not job_id.startswith(".")


class JobRunner:
    """Runs each job in a daemon thread; an exception marks the job failed (type only is logged)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def submit(self, job_id: str, work: Callable[[str], None]) -> None:
        with self._lock:
            running = self._threads.get(job_id)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(
                target=self._run, args=(job_id, work), name=f"bulk-{job_id[:8]}", daemon=True
            )
            self._threads[job_id] = thread
            thread.start()

    def alive(self, job_id: str) -> bool:
        with self._lock:
            thread = self._threads.get(job_id)
            return thread is not None and thread.is_alive()

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        with self._lock:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)

    def wait_all(self, timeout: float = 30.0) -> None:
        """Let running jobs finish (at shutdown, before the database connections are closed)."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _run(self, job_id: str, work: Callable[[str], None]) -> None:
        try:
            work(job_id)
        except Exception as exc:  # noqa: BLE001 - a job thread must record, not raise
            log.error("bulk job %s failed: %s", job_id, type(exc).__name__)
            try:
                self.store.update(
                    job_id,
                    status="failed",
                    result={"error": f"{type(exc).__name__}: {str(exc)[:200]}"},
                )
            except Exception as inner:  # noqa: BLE001 - the database itself may be gone
                log.error("bulk job %s: cannot record failure: %s", job_id, type(inner).__name__)


def principal_params(principal: Principal) -> dict[str, Any]:
    """The caller who starts a job, as JSON for its row: the job runs as them, not as the
    operator, so it reaches only what they may (ids and scopes only)."""
    return {
        "kind": principal.kind.value,
        "subject": principal.subject,
        "patient": principal.patient_id,
        "rpps": principal.rpps,
        "profession": principal.profession,
        "client": principal.client_id,
        "scopes": sorted(principal.scopes),
        "organisation": principal.organisation,
    }


def job_principal(params: dict[str, Any]) -> Principal:
    """The caller a job runs as; a job row without one (made before jobs carried their caller)
    is refused rather than run with the operator's rights."""
    saved = params.get("principal")
    if not isinstance(saved, dict):
        raise ValueError("this job records no caller: start it again")
    return Principal(
        Kind(saved["kind"]),
        str(saved["subject"]),
        patient_id=saved.get("patient"),
        rpps=saved.get("rpps"),
        profession=saved.get("profession"),
        client_id=saved.get("client"),
        scopes=frozenset(saved.get("scopes") or ()),
        organisation=saved.get("organisation"),
    )
