"""The log read forward, for the sweeps that act on what happened (a patient's alerts).

Read by leaf index, not by ``seq``: with several writers, events can commit out of ``seq`` order,
but the sequencer gives leaf indexes to committed events only, consecutively, so a reader that
remembers the last index it read never skips an event committed late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select

from carnet.audit.hidden import slice_refs
from carnet.audit.models import audit_event, audit_event_patient
from carnet.audit.service import AuditService


@dataclass(frozen=True)
class PatientEvent:
    """One event as it concerns one patient: its leaf index, body and the items it names."""

    leaf_index: int
    patient_id: str
    body: dict[str, Any]
    refs: list[str]  # Type/id/_history/v in the patient's slice


def sequenced_after(audit: AuditService, after_leaf: int, limit: int) -> list[PatientEvent]:
    """The patient slices of the sequenced events after leaf ``after_leaf``, in log order."""
    e, p = audit_event.c, audit_event_patient.c
    with audit.store.read() as conn:
        rows = conn.execute(
            select(e.leaf_index, e.body, p.patient_id, p.slice)
            .select_from(audit_event.join(audit_event_patient, p.seq == e.seq))
            .where(e.leaf_index > after_leaf)
            .order_by(e.leaf_index, p.patient_id)
            .limit(limit)
        ).all()
    return [
        PatientEvent(
            int(r.leaf_index), str(r.patient_id), orjson.loads(r.body), slice_refs(bytes(r.slice))
        )
        for r in rows
    ]
