"""The audit log as a test reads it: every event's body, in the order the log holds them.

On SQLite a read that meets a writer holding the lock spools its events (carnet/audit/spool.py)
and the checkpointer moves them into the log later; a background job (bulk export, import) reads
while the job's own writes hold that lock. A test that read only ``audit_event`` could therefore
miss events that are recorded, durable, and not yet drained. The spool is drained first.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select

from carnet.app import Services
from carnet.audit.models import audit_event


def logged_events(services: Services) -> list[dict[str, Any]]:
    """Every audit event's body, oldest first, spooled ones included."""
    services.audit.drain()
    with services.engine.connect() as conn:
        bodies = conn.execute(select(audit_event.c.body).order_by(audit_event.c.seq)).scalars()
        return [orjson.loads(body) for body in bodies]
