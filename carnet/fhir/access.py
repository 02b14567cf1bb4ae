"""The seam where the policy decision point and the audit log wrap every read and write.

The application installs ``carnet.policy.enforce.PolicyAccess`` (decide with the policy decision
point, record in the audit log); the engine has no hook of its own that allows everything (the
benchmarks bring theirs). Each ``FhirSession`` calls the hook with its unit of work, so an audit
append joins the same transaction as the write it records.
"""

from __future__ import annotations

from typing import Protocol

from carnet.caller import RequestContext, Visibility
from carnet.fhir.repository import StoredResource, Unit

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


class AccessPolicy(Protocol):
    """What the engine is given to decide and record: a fresh guard for each session."""

    def open(self) -> AccessHook: ...


class AccessHook(Protocol):
    """One session's guard, called by its FhirSession around the interaction; it holds what the
    session decided (decisions, refused items, the deciding rule), so nothing outlives it.

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
