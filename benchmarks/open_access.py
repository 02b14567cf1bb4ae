"""Access hooks for the benchmarks' baselines, outside the product (which always decides with
the policy and records in the audit log): ``OpenAccess`` allows everything and records nothing;
``AuditOnlyAccess`` allows everything and records in the audit log (what the audit alone costs)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from carnet.audit.service import AuditService
from carnet.caller import RequestContext, Visibility
from carnet.fhir.access import PendingEvent
from carnet.fhir.repository import StoredResource, Unit


class OpenAccess:
    """Everything allowed, nothing recorded: the foundation's loopback-only stance."""

    def open(self) -> OpenAccess:
        return self  # holds nothing of a session

    def check(
        self, unit: Unit, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> str | None:
        return None

    def check_resource(
        self, unit: Unit, ctx: RequestContext, action: str, stored: StoredResource
    ) -> None:
        return None

    def visibility(self, unit: Unit, ctx: RequestContext, action: str) -> Visibility | None:
        return None

    def record(
        self,
        unit: Unit,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        touched: list[StoredResource],
    ) -> str | None:
        return ctx.rule

    def commit(self, conn: Connection, events: Sequence[PendingEvent]) -> None:
        return None

    def record_failure(
        self,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        res_id: str | None,
        status: int,
        unit: Unit | None = None,
    ) -> None:
        return None


class AuditOnlyAccess(OpenAccess):
    """Everything allowed, every interaction recorded in the audit log."""

    def __init__(self, audit: AuditService) -> None:
        self.audit = audit

    def check(
        self, unit: Unit, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> str | None:
        return ctx.rule

    def commit(self, conn: Connection, events: Sequence[PendingEvent]) -> None:
        self.audit.append_pending(conn, events)

    def record_failure(
        self,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        res_id: str | None,
        status: int,
        unit: Unit | None = None,
    ) -> None:
        self.audit.record_failure(ctx, action, res_type, res_id, status)
