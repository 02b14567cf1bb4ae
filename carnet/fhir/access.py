"""The seam where the policy decision point and the audit log wrap every read and write.

The application installs ``carnet.policy.enforce.PolicyAccess`` (decide with the policy decision
point, record in the audit log); the engine has no hook of its own that allows everything (the
benchmarks bring theirs). Each ``FhirSession`` calls the hook with its unit of work, so an audit
append joins the same transaction as the write it records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from sqlalchemy import Connection

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


class TouchedItem(NamedTuple):
    """One resource an interaction touched, as its audit event names it."""

    res_type: str
    res_id: str
    version: int | None
    patient_id: str | None


@dataclass
class PendingEvent:
    """An allowed interaction's audit event, held by its session until the unit commits.
    ``ctx`` carries the rule that allowed it; ``touched`` None: nothing recorded (the event then
    names the interaction's target alone, e.g. a delete of a resource that does not exist)."""

    ctx: RequestContext
    action: str
    res_type: str | None
    res_id: str | None
    touched: list[TouchedItem] | None = None


class PendingEvents:
    """The audit events one session's interaction owes, in the order they were allowed: one
    per allowed check, filled by the success recorded for it (or added when none was expected)."""

    def __init__(self) -> None:
        self.events: list[PendingEvent] = []

    def expect(
        self, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> None:
        self.events.append(PendingEvent(ctx, action, res_type, res_id))

    def record(
        self,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        touched: list[StoredResource],
        counted: Sequence[str] = (),
    ) -> None:
        items = [TouchedItem(t.res_type, t.res_id, t.version, t.patient_id) for t in touched]
        # records whose items were counted, not returned: the event names each one's Patient
        items += [TouchedItem("Patient", pid, None, pid) for pid in counted]
        for pending in reversed(self.events):
            if (
                pending.touched is None
                and pending.action == action
                and pending.res_type == res_type
            ):
                pending.ctx = ctx
                pending.touched = items
                return
        self.events.append(PendingEvent(ctx, action, res_type, None, items))


class AccessPolicy(Protocol):
    """What the engine is given to decide and record: a fresh guard for each session."""

    def open(self) -> AccessHook: ...


class AccessHook(Protocol):
    """One session's guard, called by its FhirSession around the interaction; it holds what the
    session decided (decisions, refused items, the deciding rule), so nothing outlives it.

    ``check`` before acting, on the type (raise a 403 FhirError to refuse), returns the rule that
    allows it; ``check_resource`` on each resource read or written (403, or 404 for an item hidden
    from the caller); ``visibility`` restricts searches, history and compartment reads in the query;
    ``record`` after success, inside the same transaction as the write (what a success entails
    besides its event: authors, care relationships), returns the rule its event names. The
    session holds the events it owes (``PendingEvents``) and hands them to ``commit`` inside its
    unit, just before the unit commits, so a write and its events commit or roll back together.
    ``record_failure`` after a refused or failed interaction, once its transaction has rolled back
    (so the failure's own record survives), given that unit if it was opened (what was refused in
    it: a Bundle fails as a whole). Every interaction gets its events from exactly one of
    ``commit`` / ``record_failure``.
    """

    def check(
        self, unit: Unit, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> str | None: ...

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
    ) -> str | None: ...

    def commit(self, conn: Connection, events: Sequence[PendingEvent]) -> None: ...

    def record_failure(
        self,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        res_id: str | None,
        status: int,
        unit: Unit | None = None,
    ) -> None: ...
