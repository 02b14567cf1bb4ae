"""Search snapshots: the ordered ids behind a multi-page search's ``next``/``previous`` links.

The first page of a longer result keeps the ids of (up to) ``SNAPSHOT_MAX`` matches for
``SNAPSHOT_LIFETIME``, so paging neither skips nor repeats resources when data changes between
pages. A snapshot is bound to the caller, the resource type and the query that made it (a keyed
digest: the query may hold a name or an NIR). Replayed by anyone else, on another type or with
other criteria, or once expired, it answers exactly as an unknown snapshot does; the audit log
alone tells the cases apart (the refusal's rule). It holds ids only: the service re-applies the
caller's visibility to every page it serves.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import orjson
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import OperationalError

from carnet.caller import Principal
from carnet.crypto.blind_index import BlindIndexer
from carnet.db.bulk import bulk_insert
from carnet.db.engine import is_lock_timeout, is_writing, without_waiting
from carnet.fhir.dates import sortable, utc_now
from carnet.fhir.errors import FhirError, Issue
from carnet.fhir.models import search_snapshot, search_snapshot_binding
from carnet.fhir.repository import Unit
from carnet.fhir.search import SearchRequest

SNAPSHOT_MAX = 2000  # ids kept for stable paging; pages beyond read live results
SNAPSHOT_LIFETIME = timedelta(hours=1)

UNKNOWN = "search-snapshot-unknown"
NOT_BOUND = "search-snapshot-not-bound"  # another caller, type or query
EXPIRED = "search-snapshot-expired"


@dataclass(frozen=True)
class SnapshotPage:
    keys: list[tuple[str, str]]  # (type, id) at the requested positions, in order
    size: int  # how many ids the snapshot holds (paging links reach its end)


def binding_of(blind: BlindIndexer, principal: Principal, req: SearchRequest) -> str:
    """The keyed digest of who searched, on which type (and compartment), with which criteria
    and result parameters. Paging parameters (``_count``, ``_offset``) are not part of it."""
    caller = [
        principal.kind.value,
        principal.subject,
        principal.client_id,
        principal.patient_id,
        principal.rpps,
    ]
    query = sorted(req.used)
    return blind.digest(
        "search-snapshot", orjson.dumps([caller, req.res_type, req.compartment, query]).decode()
    )


def store(unit: Unit, keys: Sequence[tuple[str, str]], binding: str) -> str | None:
    """Keep the ordered result of a multi-page search for its caller; returns its id. Expired
    snapshots are purged on the way. A search runs in a read transaction, which on SQLite never
    waits for the write lock: if a writer holds it, no snapshot is kept (None) and the pages
    read live results, as those beyond ``SNAPSHOT_MAX`` do."""
    if is_writing(unit.conn) or unit.conn.dialect.name != "sqlite":
        return _store(unit, keys, binding)
    try:
        with without_waiting(unit.conn), unit.conn.begin_nested():
            return _store(unit, keys, binding)
    except OperationalError as exc:
        if not is_lock_timeout(exc):
            raise
        return None


def _store(unit: Unit, keys: Sequence[tuple[str, str]], binding: str) -> str:
    moment = utc_now()
    expired = sortable(moment - SNAPSHOT_LIFETIME)
    conn = unit.conn
    conn.execute(delete(search_snapshot).where(search_snapshot.c.created_at < expired))
    conn.execute(
        delete(search_snapshot_binding).where(search_snapshot_binding.c.created_at < expired)
    )
    snapshot_id = str(uuid.uuid4())
    now = sortable(moment)
    conn.execute(
        insert(search_snapshot_binding).values(
            snapshot_id=snapshot_id, binding=binding, size=len(keys), created_at=now
        )
    )
    bulk_insert(
        conn,
        search_snapshot,
        [
            {
                "snapshot_id": snapshot_id,
                "position": i,
                "res_type": t,
                "res_id": r,
                "created_at": now,
            }
            for i, (t, r) in enumerate(keys)
        ],
    )
    return snapshot_id


def page(unit: Unit, snapshot_id: str, binding: str, offset: int, count: int) -> SnapshotPage:
    """``count`` ids of the snapshot from ``offset``; a 410 alike for an unknown, foreign or
    expired snapshot (its rule, for the audit log, says which)."""
    b = search_snapshot_binding.c
    head = unit.conn.execute(
        select(b.binding, b.size, b.created_at).where(b.snapshot_id == snapshot_id)
    ).first()
    if head is None:
        raise refused(UNKNOWN)
    if not hmac.compare_digest(head.binding, binding):
        raise refused(NOT_BOUND)
    if head.created_at < sortable(utc_now() - SNAPSHOT_LIFETIME):
        raise refused(EXPIRED)
    c = search_snapshot.c
    rows = unit.conn.execute(
        select(c.res_type, c.res_id)
        .where(c.snapshot_id == snapshot_id, c.position >= offset)
        .order_by(c.position)
        .limit(count)
    ).all()
    return SnapshotPage([(r[0], r[1]) for r in rows], int(head.size))


def refused(rule: str) -> FhirError:
    """The one answer for a snapshot this caller cannot read, whatever the reason."""
    issue = Issue("deleted", "these search results have expired: run the search again")
    return FhirError(410, [issue], rule=rule)
