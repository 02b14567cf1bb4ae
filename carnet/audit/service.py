"""AuditService: the audit log's public interface.

Each FHIR session (carnet/fhir/session.py) holds the events its interaction owes (one per
allowed check, with what it touched) and hands them over, through the policy's guard, with
``append_pending``: one executemany in the unit's transaction just before it commits, so a write
and its event commit or roll back together. The service keeps no state per unit of work. ``record_failure`` appends the failure's event
in a transaction of its own. An interaction that was allowed but reported nothing (a delete of a
resource that does not exist) still gets its event. The audit log decides nothing.

On SQLite a read runs in a read transaction that never waits for the write lock: its events are
appended in it when the lock is free at that instant, and otherwise written to the audit spool
(``carnet.audit.spool``), durable before the read answers. A failure's event and the audit log's
own reads do the same for the interactions that write nothing (``READ_ACTIONS``).

The checkpointer drains the spool into the log, sequences committed events into the Merkle tree
and signs a checkpoint at least every ``checkpoint_events`` events or ``checkpoint_seconds``
seconds (a background thread in the server), and on demand. The patient's history and exports
come with inclusion proofs; the history also shows the patient's events still in the spool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import OperationalError

from carnet.audit import checkpoints, merkle
from carnet.audit.checkpoints import Checkpoint, Signer
from carnet.audit.events import Actor, Event, Touched, build_event
from carnet.audit.models import audit_checkpoint, audit_event, audit_event_patient
from carnet.audit.spool import AuditSpool
from carnet.audit.store import AuditStore
from carnet.caller import RequestContext
from carnet.db.engine import is_lock_timeout, is_writing, without_waiting
from carnet.db.instants import stamp
from carnet.fhir.access import READ_ACTIONS, PendingEvent

log = logging.getLogger("carnet.audit")

_SUCCESS_STATUS = {"create": 201, "post": 201, "delete": 204}
DRAIN_BATCH = 1000  # spooled events moved into the log per write transaction
# The rule a refused read of a record's access history names (the patient, their representatives
# and operators read it): one name, whichever path refused (the FHIR API, the portal, a proof).
HISTORY_RULE = "history-patient-or-representative"


def actor_of(ctx: RequestContext) -> Actor:
    return Actor(
        actor=ctx.actor,
        source=ctx.source,
        purpose=ctx.purpose,
        role=ctx.principal.role,
        organisation=ctx.principal.organisation,
        client_id=ctx.principal.client_id,
        rule=ctx.rule,
    )


def slice_patient(slice_bytes: bytes) -> str:
    """The patient a slice of an event belongs to (its ``patient`` member)."""
    value = orjson.loads(slice_bytes)
    return str(value.get("patient", "")) if isinstance(value, dict) else ""


def _target(res_type: str | None, res_id: str | None) -> list[Touched]:
    """What a failed or empty interaction aimed at: ``Type/id``; a Patient is its own compartment."""
    if not res_type or not res_id:
        return []
    return [Touched(res_type, res_id[:64], None, res_id[:64] if res_type == "Patient" else None)]


@dataclass(frozen=True)
class LoggedEvent:
    """An event as stored, with its patient slice(s) and, once sequenced, its inclusion proof."""

    event_id: str
    body: bytes
    slices: list[bytes]
    leaf_index: int | None
    proof: list[bytes] | None


@dataclass(frozen=True)
class HistoryPage:
    total: int
    events: list[LoggedEvent]
    checkpoint: Checkpoint | None


def without_proofs(rows: list[tuple[str, bytes, int | None, list[bytes]]]) -> list[LoggedEvent]:
    """Events as read from the log, with their leaf index but no inclusion proof."""
    return [
        LoggedEvent(event_id, bytes(body), [bytes(s) for s in slices], leaf, None)
        for event_id, body, leaf, slices in rows
    ]


class AuditService:
    """Records every interaction; sequences, signs, proves; serves the patient's history."""

    def __init__(
        self,
        engine: Engine,
        signer: Signer,
        *,
        checkpoint_events: int = 1000,
        checkpoint_seconds: float = 10.0,
    ) -> None:
        self.store = AuditStore(engine)
        self.spool = AuditSpool.beside(engine)
        self._drain_lock = threading.Lock()
        self.signer = signer
        self.public_key = signer.public_key_bytes()
        self.origin = checkpoints.origin_for(self.public_key)
        self.checkpoint_events = max(1, checkpoint_events)
        self.checkpoint_seconds = max(0.05, checkpoint_seconds)
        self._since_checkpoint = 0
        self._counter_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the events of an interaction ------------------------------------------------------------

    def append_pending(self, conn: Connection, pending: Sequence[PendingEvent]) -> None:
        """The events a FHIR session held for its interaction, appended in its unit's transaction
        just before it commits (each with what it touched, or naming its target alone)."""
        events = [
            build_event(
                actor_of(p.ctx),
                p.action,
                p.res_type,
                _SUCCESS_STATUS.get(p.action, 200),
                _target(p.res_type, p.res_id)
                if p.touched is None
                else [Touched(*item) for item in p.touched],
            )
            for p in pending
        ]
        self.append_in(conn, events)

    def record_failure(
        self,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        res_id: str | None,
        status: int,
    ) -> None:
        event = build_event(actor_of(ctx), action, res_type, status, _target(res_type, res_id))
        self.append_outcome(action, [event])

    def append(self, events: Sequence[Event]) -> None:
        """Append events in a transaction of their own, waiting for the lock (sign-ins, tokens,
        rule edits, benchmarks)."""
        with self.store.write() as conn:
            self.store.append(conn, events)
        self.appended(len(events))

    def append_outcome(self, action: str, events: Sequence[Event]) -> None:
        """Append the events of an interaction that ended outside its unit (a refusal, a
        failure) in a transaction of their own; those of a read never wait for the lock."""
        if self.spool is None or action not in READ_ACTIONS:
            self.append(events)
            return
        try:
            with self.store.write(wait=False) as conn:
                self.store.append(conn, events)
        except OperationalError as exc:
            if not is_lock_timeout(exc):
                raise
            self.spool.add(events)
        self.appended(len(events))

    def append_in(self, conn: Connection, events: Sequence[Event]) -> None:
        """Append events in a unit's transaction. A read unit on SQLite (not begun to write)
        appends only if it gets the write lock at once, and spools its events otherwise."""
        if self.spool is None or is_writing(conn):
            self.store.append(conn, events)
        else:
            try:
                with without_waiting(conn), conn.begin_nested():
                    self.store.append(conn, events)
            except OperationalError as exc:
                if not is_lock_timeout(exc):
                    raise
                self.spool.add(events)
        self.appended(len(events))

    # -- the spool --------------------------------------------------------------------------------

    def drain(self, *, wait: bool = True) -> int:
        """Move spooled events into the log, oldest first, one write transaction per batch;
        returns how many were new. Idempotent: an event the log already holds (a drain
        interrupted between the log's commit and the spool's delete) is only deleted.
        ``wait`` False: raise at once (a lock timeout) if a writer holds the lock."""
        if self.spool is None:
            return 0
        # One drain at a time in this process; one that must not wait leaves it to the other.
        if not self._drain_lock.acquire(blocking=wait):
            return 0
        moved = 0
        try:
            while batch := self.spool.oldest(DRAIN_BATCH):
                with self.store.write(wait=wait) as conn:
                    known = self.store.known_ids(conn, [s.event.event_id for s in batch])
                    fresh = [s.event for s in batch if s.event.event_id not in known]
                    self.store.append(conn, fresh)
                self.spool.remove([s.seq for s in batch])
                moved += len(fresh)
        finally:
            self._drain_lock.release()
        return moved

    # -- checkpoints ----------------------------------------------------------------------------

    def appended(self, count: int) -> None:
        with self._counter_lock:
            self._since_checkpoint += count
            due = self._since_checkpoint >= self.checkpoint_events
        if due:
            self._wake.set()

    def checkpoint(self, *, wait: bool = True) -> Checkpoint | None:
        """Drain the spool, sequence every committed event and sign a checkpoint; None if
        nothing was new. ``wait`` False: raise at once if a writer holds the lock."""
        with self._counter_lock:
            self._since_checkpoint = 0
        self.drain(wait=wait)
        with self.store.write(wait=wait) as conn:
            size = self.store.lock(conn)
            latest = self.store.latest_checkpoint_row(conn)
            frontier = self.store.frontier(conn, size)
            new_size = self.store.sequence(conn, size, frontier)
            if latest is not None and latest.tree_size == new_size:
                return None
            cp = checkpoints.sign(self.signer, new_size, frontier.root(), stamp())
            conn.execute(
                audit_checkpoint.insert().values(
                    tree_size=cp.size, root_hash=cp.root, created=cp.time, note=cp.note
                )
            )
        return cp

    def latest(self) -> Checkpoint | None:
        with self.store.read() as conn:
            row = self.store.latest_checkpoint_row(conn)
        return None if row is None else checkpoints.open_note(row.note, self.public_key)

    def current(self) -> Checkpoint | None:
        """The latest checkpoint after sequencing whatever is pending."""
        return self.checkpoint() or self.latest()

    def current_unblocked(self) -> Checkpoint | None:
        """``current`` if the write lock is free now; else the latest checkpoint as it is (the
        audit log's reads never wait for a writer; events pending then have no proof yet)."""
        try:
            return self.checkpoint(wait=False) or self.latest()
        except OperationalError as exc:
            if not is_lock_timeout(exc):
                raise
            return self.latest()

    def start(self) -> None:
        """Run the checkpointer in a background thread (the server does; CLI commands flush)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="carnet-audit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self._thread = None
        self.flush()

    def flush(self) -> None:
        """Drain the spool, sequence and sign whatever is pending (at shutdown, at the end of a
        CLI command)."""
        try:
            self.checkpoint()
        except Exception as exc:  # noqa: BLE001 - shutdown must go on; the next start catches up
            log.error("audit checkpoint failed: %s", type(exc).__name__)
        if self.spool is not None:
            self.spool.close()  # opened again on next use

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.checkpoint_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                with self.store.read() as conn:
                    pending = self.store.pending(conn)
                if pending or (self.spool is not None and self.spool.count()):
                    self.checkpoint()
            except Exception as exc:  # noqa: BLE001 - keep the checkpointer alive; ids only
                if is_lock_timeout(exc):  # a long writer: the next round drains and signs
                    log.info("audit checkpoint deferred: the write lock is held")
                else:
                    log.error("audit checkpoint failed: %s", type(exc).__name__)

    # -- proofs ------------------------------------------------------------------------------------

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        with self.store.read() as conn:
            return self.store.proofs(conn, {0: merkle.consistency_ranges(first, second)})[0]

    # -- the patient's view ------------------------------------------------------------------

    def audit_read(
        self,
        ctx: RequestContext,
        action: str,
        patients: Sequence[str],
        event_id: str | None = None,
        status: int = 200,
    ) -> None:
        """Reading the audit log is itself audited: one event, a slice per patient concerned,
        with the reading's outcome."""
        touched = [Touched("Patient", pid, None, pid) for pid in patients]
        if event_id:
            touched.append(Touched("AuditEvent", event_id, None, None))
        self.append_outcome(
            action, [build_event(actor_of(ctx), action, "AuditEvent", status, touched)]
        )

    def patient_history(
        self, patient_id: str, ctx: RequestContext, *, count: int, offset: int, proofs: bool = True
    ) -> HistoryPage:
        """The patient's events, newest first, each with its proof in the latest checkpoint
        (``proofs`` False: leaf indexes only, for a list that proves one entry on demand).
        Never waits for a writer: events still in the spool come first, without a proof."""
        self.audit_read(ctx, "search", [patient_id])
        cp = self.current_unblocked()
        join = audit_event.join(audit_event_patient, audit_event_patient.c.seq == audit_event.c.seq)
        with self.store.read() as conn:
            waiting = self.waiting(conn, patient_id)
            first = waiting[offset : offset + count]
            total = conn.execute(
                select(func.count())
                .select_from(audit_event_patient)
                .where(audit_event_patient.c.patient_id == patient_id)
            ).scalar_one()
            rows = conn.execute(
                select(
                    audit_event.c.event_id,
                    audit_event.c.body,
                    audit_event.c.leaf_index,
                    audit_event_patient.c.slice,
                )
                .select_from(join)
                .where(audit_event_patient.c.patient_id == patient_id)
                .order_by(audit_event.c.seq.desc())
                .offset(max(0, offset - len(waiting)))
                .limit(count - len(first))
            ).all()
            found = [(r[0], r[1], r[2], [r[3]]) for r in rows]
            logged = self._with_proofs(conn, found, cp) if proofs else without_proofs(found)
        events = [LoggedEvent(i, body, [piece], None, None) for i, body, piece in first] + logged
        return HistoryPage(int(total) + len(waiting), events, cp)

    def waiting(self, conn: Connection, patient_id: str) -> list[tuple[str, bytes, bytes]]:
        """``(event id, body, slice)`` of the patient's events still in the spool, newest first.
        Read before the log in ``conn``'s transaction: an event drained in between is then in
        the log as read, and only there."""
        if self.spool is None:
            return []
        found = self.spool.of_patient(patient_id)
        if not found:
            return []
        logged = self.store.known_ids(conn, [event_id for event_id, _, _ in found])
        return [item for item in found if item[0] not in logged]

    def event(
        self,
        event_id: str,
        ctx: RequestContext,
        shows: Callable[[bytes], bool] | None = None,
    ) -> tuple[LoggedEvent, Checkpoint | None]:
        """One event by id with the slices ``shows`` lets the caller see (all of them without
        it), from the spool if it waits there; raises KeyError if there is none.

        The reading is audited with what it gave: a read (200) naming the patients whose slices
        are shown; when none is (the caller is answered as for a missing event), a refused read
        (404) in the history of each patient of the event, never a read they did not get. An id
        that names no event is a refused read (404) too, naming nothing: every access, allowed
        or denied, is audited, and the id the caller made up (the portal's is free text) is not
        recorded."""
        refused = replace(ctx, rule=HISTORY_RULE)
        spooled = self.spool.find(event_id) if self.spool is not None else None
        with self.store.read() as conn:
            row = conn.execute(
                select(audit_event.c.seq).where(audit_event.c.event_id == event_id)
            ).first()
        if row is None and spooled is None:
            self.audit_read(refused, "read", [], None, status=404)
            raise KeyError(event_id)
        cp = self.current_unblocked()
        with self.store.read() as conn:
            found = conn.execute(
                select(audit_event.c.seq, audit_event.c.body, audit_event.c.leaf_index).where(
                    audit_event.c.event_id == event_id
                )
            ).first()
            if found is None:  # still in the spool: no proof yet
                assert spooled is not None
                pieces = [spooled.slices[pid] for pid in sorted(spooled.slices)]
                logged = LoggedEvent(event_id, spooled.body, pieces, None, None)
            else:
                slices = list(
                    conn.execute(
                        select(audit_event_patient.c.slice)
                        .where(audit_event_patient.c.seq == found[0])
                        .order_by(audit_event_patient.c.patient_id)
                    ).scalars()
                )
                logged = self._with_proofs(conn, [(event_id, found[1], found[2], slices)], cp)[0]
        shown = logged.slices if shows is None else [s for s in logged.slices if shows(s)]
        if shows is None or shown:
            self.audit_read(ctx, "read", [slice_patient(s) for s in shown], event_id)
        else:
            patients = [slice_patient(s) for s in logged.slices]
            self.audit_read(refused, "read", patients, event_id, status=404)
        return replace(logged, slices=shown), cp

    def export_patient(
        self, patient_id: str, ctx: RequestContext, *, chunk: int = 500
    ) -> tuple[Checkpoint | None, Iterator[LoggedEvent]]:
        """The patient's whole history, oldest first, each event proven in one checkpoint."""
        self.audit_read(ctx, "export", [patient_id])
        cp = self.current()
        join = audit_event.join(audit_event_patient, audit_event_patient.c.seq == audit_event.c.seq)

        def events() -> Iterator[LoggedEvent]:
            last = -1
            while True:
                with self.store.read() as conn:
                    rows = conn.execute(
                        select(
                            audit_event.c.seq,
                            audit_event.c.event_id,
                            audit_event.c.body,
                            audit_event.c.leaf_index,
                            audit_event_patient.c.slice,
                        )
                        .select_from(join)
                        .where(
                            audit_event_patient.c.patient_id == patient_id,
                            audit_event.c.seq > last,
                        )
                        .order_by(audit_event.c.seq)
                        .limit(chunk)
                    ).all()
                    if not rows:
                        return
                    last = rows[-1][0]
                    yield from self._with_proofs(
                        conn, [(r[1], r[2], r[3], [r[4]]) for r in rows], cp
                    )

        return cp, events()

    def _with_proofs(
        self,
        conn: Connection,
        rows: list[tuple[str, bytes, int | None, list[bytes]]],
        cp: Checkpoint | None,
    ) -> list[LoggedEvent]:
        size = cp.size if cp else 0
        ranges: dict[Any, list[merkle.Range]] = {
            i: merkle.inclusion_ranges(leaf, size)
            for i, (_, _, leaf, _) in enumerate(rows)
            if leaf is not None and leaf < size
        }
        proofs = self.store.proofs(conn, ranges)
        return [
            LoggedEvent(event_id, bytes(body), [bytes(s) for s in slices], leaf, proofs.get(i))
            for i, (event_id, body, leaf, slices) in enumerate(rows)
        ]
