"""What of a patient's access history is hidden from the person reading it.

An event names the items it touched in the patient's slice (``Type/id/_history/v``). An item the
policy hides from the viewer (INVISIBLE_PATIENT from the patient; that and
INVISIBLE_REPRESENTANTS_LEGAUX from a representative) must not show through the history either:
an event whose slice names only hidden items is left out, pages and totals included; one that
names visible and hidden items shows the visible ones, with its slice withheld from the proof
(the slice's bytes name the hidden items; the event itself stays proven in the log). The flags
are read when the history is read, so an item announced later shows with its whole history.
"""

from __future__ import annotations

from typing import Protocol

import orjson
from sqlalchemy import select

from carnet.audit.checkpoints import Checkpoint
from carnet.audit.models import audit_event, audit_event_patient
from carnet.audit.service import (
    AuditService,
    HistoryPage,
    LoggedEvent,
    slice_patient,
    without_proofs,
)
from carnet.caller import Kind, Principal, RequestContext


class HistoryGate(Protocol):
    """Who may read a record's access history, and what of it they may not see (the policy's
    controls service answers; the audit log does not depend on the policy)."""

    def may_see_history(self, principal: Principal, patient_id: str) -> bool: ...

    def history_hidden(self, principal: Principal, patient_id: str) -> frozenset[str]: ...


def item_of(ref: str) -> str:
    """``Type/id`` of a reference an event holds (``Type/id`` or ``Type/id/_history/v``)."""
    return ref.split("/_history/", 1)[0]


def slice_refs(slice_bytes: bytes) -> list[str]:
    value = orjson.loads(slice_bytes)
    if not isinstance(value, dict):
        return []
    return [str(ref) for ref in value.get("resources") or []]


def shown(slice_bytes: bytes, hidden: frozenset[str]) -> bool:
    """Whether a slice names anything the viewer may see (a slice of hidden items only: no)."""
    if not hidden:
        return True
    refs = slice_refs(slice_bytes)
    return not refs or any(item_of(ref) not in hidden for ref in refs)


def whole(slice_bytes: bytes, hidden: frozenset[str]) -> bool:
    """Whether a slice names nothing hidden from the viewer (so it may be shown as it is)."""
    return not hidden or all(item_of(ref) not in hidden for ref in slice_refs(slice_bytes))


def visible_history(
    audit: AuditService,
    patient_id: str,
    ctx: RequestContext,
    hidden: frozenset[str],
    *,
    count: int,
    offset: int,
    proofs: bool = True,
) -> HistoryPage:
    """``AuditService.patient_history`` without the events the viewer may not see: the slices
    are scanned (ids only) to page and count what is shown; only the page is loaded and proven.
    Used when the record has items hidden from the viewer, rarely."""
    audit.audit_read(ctx, "search", [patient_id])
    cp = audit.current_unblocked()
    p, e = audit_event_patient.c, audit_event.c
    join = audit_event.join(audit_event_patient, p.seq == e.seq)
    with audit.store.read() as conn:
        # events still in the spool first (newest), as the unfiltered history shows them
        waiting = [w for w in audit.waiting(conn, patient_id) if shown(w[2], hidden)]
        first = waiting[offset : offset + count]
        slices = conn.execute(
            select(p.seq, p.slice).where(p.patient_id == patient_id).order_by(p.seq.desc())
        )
        seqs = [row.seq for row in slices if shown(bytes(row.slice), hidden)]
        start = max(0, offset - len(waiting))
        page = seqs[start : start + count - len(first)]
        rows = conn.execute(
            select(e.seq, e.event_id, e.body, e.leaf_index, p.slice)
            .select_from(join)
            .where(p.patient_id == patient_id, e.seq.in_(page))
        ).all()
        by_seq = {row.seq: row for row in rows}
        ordered = [by_seq[seq] for seq in page if seq in by_seq]
        # the proofs exactly as the unfiltered history builds them
        found = [(r.event_id, r.body, r.leaf_index, [r.slice]) for r in ordered]
        events = audit._with_proofs(conn, found, cp) if proofs else without_proofs(found)
    spooled = [LoggedEvent(i, body, [piece], None, None) for i, body, piece in first]
    return HistoryPage(len(waiting) + len(seqs), spooled + events, cp)


def readable_event(
    audit: AuditService,
    event_id: str,
    ctx: RequestContext,
    gate: HistoryGate,
    *,
    patient_id: str | None = None,
    hidden: frozenset[str] | None = None,
) -> tuple[LoggedEvent, Checkpoint | None, frozenset[str]]:
    """One event by id with the patient slices this caller may see, and the items hidden from
    them in those slices: the one answer to "which slices of an event may this caller see", for
    ``GET /fhir/AuditEvent/<id>`` and the portal's history entry (its check and proof file).

    A slice is shown when the caller may read its patient's history (``gate``) and it names
    something not hidden from them (``shown``). With ``patient_id`` only that record's slice is
    (the portal reads one record's history; ``hidden``: what its gate already found hidden
    there). An operator reading an event outside a record sees every slice whole. The reading
    is audited by ``AuditService.event`` with what it gave; raises KeyError when nothing is
    shown (no such event, or none of its slices for this caller: one answer for both)."""
    if patient_id is None and ctx.principal.kind is Kind.OPERATOR:
        logged, checkpoint = audit.event(event_id, ctx)
        return logged, checkpoint, frozenset()
    hiding: dict[str, frozenset[str]] = {}  # per patient whose history the caller may see
    if patient_id is not None and hidden is not None:
        hiding[patient_id] = hidden

    def shows(piece: bytes) -> bool:
        patient = slice_patient(piece)
        if patient_id is not None and patient != patient_id:
            return False  # another record's slice: not part of this history
        if patient not in hiding:
            if not gate.may_see_history(ctx.principal, patient):
                return False
            hiding[patient] = gate.history_hidden(ctx.principal, patient)
        return shown(piece, hiding[patient])

    logged, checkpoint = audit.event(event_id, ctx, shows)
    if not logged.slices:
        raise KeyError(event_id)
    return logged, checkpoint, frozenset().union(*(hiding[slice_patient(p)] for p in logged.slices))
