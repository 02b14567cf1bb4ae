"""The seam where the policy decision point and the audit log wrap every read and write.

The application installs ``carnet.access.enforce.PolicyAccess`` (decide with the policy decision
point, record in the audit log). ``OpenAccess`` allows everything and records nothing: for
in-process callers that are not requests (tests of the engine alone, benchmarks' baselines).
Hooks receive the unit of work, so an audit append joins the same transaction as the write it
records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from carnet.access.principal import LOCAL_OPERATOR, Principal
from carnet.fhir.repository import StoredResource, Unit
from carnet.policy.service import Visibility

# Interactions that write nothing but their audit event. On SQLite they run in a read transaction,
# which never waits for the write lock; their events go to the audit spool when the lock is busy.
READ_ACTIONS = frozenset(
    {
        "read",
        "vread",
        "search",
        "history",
        "everything",
        "summary",
        "get",  # a batch's GET entry
        "export",  # a bulk export's kick-off and batches (the job rows are written apart)
        "export-status",
        "export-file",
        "import-status",
    }
)


@dataclass(frozen=True)
class RequestContext:
    """Who is asking, from where and why; ids only. ``rule`` is the policy rule that decided."""

    actor: str = "local"
    source: str = "127.0.0.1"
    purpose: str = "care"
    principal: Principal = LOCAL_OPERATOR
    rule: str | None = None


class AccessHook(Protocol):
    """Called by FhirService around every interaction.

    ``check`` before acting, on the type (raise a 403 FhirError to refuse); ``check_resource`` on
    each resource read or written (403, or 404 for an item hidden from the caller); ``visibility``
    restricts searches, history and compartment reads in the query; ``record`` after success, inside the
    same transaction as the write; ``record_failure`` after a refused or failed interaction, once
    its transaction has rolled back (so the failure's own record survives), given that unit if it
    was opened (what was refused in it: a Bundle fails as a whole). Exactly one of
    ``record`` / ``record_failure`` runs per resource touched or per failed interaction.
    """

    def check(
        self, unit: Unit, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> None: ...

    def check_resource(
        self, unit: Unit, ctx: RequestContext, action: str, stored: StoredResource
    ) -> None: ...

    def visibility(self, unit: Unit, ctx: RequestContext, action: str) -> Visibility | None: ...

    def record(
        self,
        unit: Unit,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        touched: list[StoredResource],
    ) -> None: ...

    def record_failure(
        self,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        res_id: str | None,
        status: int,
        unit: Unit | None = None,
    ) -> None: ...


class OpenAccess:
    """Everything allowed, nothing recorded: the foundation's loopback-only stance."""

    def check(
        self, unit: Unit, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> None:
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
    ) -> None:
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
