"""Bulk job state (table ``bulk_job``) and the background threads that run jobs.

The state lives in the database so that a status URL still answers after a restart; a job found
``accepted`` or ``running`` with no thread in this process (the server restarted) is started again.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select, update

from carnet.fhir.operations.models import bulk_job

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


class JobStore:
    """Rows of ``bulk_job``; no clinical content goes in them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, kind: str, request: str, actor: str, params: dict[str, Any]) -> str:
        job_id = str(uuid.uuid4())
        now = datetime.now(UTC)
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
            created_at=_aware(row.created_at),
        )

    def update(self, job_id: str, **values: Any) -> None:
        if "result" in values and values["result"] is not None:
            values["result"] = orjson.dumps(values["result"]).decode()
        with self.engine.begin() as conn:
            conn.execute(
                update(bulk_job)
                .where(bulk_job.c.id == job_id)
                .values(**values, updated_at=datetime.now(UTC))
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


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
