"""The history of a patient's research opt-out, read by the research hub at each extraction.

The patient sets the opt-out among their controls; every change is kept with its instant, so an
extraction honours the choice as it stood at that extraction's instant (docs/record.md), and a
later change never rewrites what an earlier extract included.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select

from carnet.db.instants import stamp, utc_now
from carnet.policy.models import access_research_optout

BATCH = 500  # people per query: the history is short per person


class ResearchOptOut:
    """Whether patients had refused the secondary use of their data at a given instant."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def opted_out(self, patient_id: str, at: datetime | None = None) -> bool:
        """Whether the patient had refused secondary use at ``at`` (now by default)."""
        with self.engine.connect() as conn:
            return opted_out(conn, patient_id, at)

    def opted_out_among(self, patient_ids: Collection[str], at: datetime) -> set[str]:
        """Those of ``patient_ids`` who had refused secondary use at ``at``: the hub asks this
        once per batch of people, at its extraction's instant."""
        with self.engine.connect() as conn:
            return opted_out_among(conn, patient_ids, at)


def record_change(conn: Connection, patient_id: str, changed_at: str, *, opted_out: bool) -> None:
    """Keep one change of the opt-out, in the transaction that changes the preference."""
    conn.execute(
        insert(access_research_optout).values(
            patient_id=patient_id, changed_at=changed_at, opted_out=opted_out
        )
    )


def opted_out(conn: Connection, patient_id: str, at: datetime | None = None) -> bool:
    """Whether ``patient_id`` had opted out of research at ``at`` (now by default): the last
    change of the opt-out at or before that instant."""
    return patient_id in opted_out_among(conn, [patient_id], at or utc_now())


def opted_out_among(conn: Connection, patient_ids: Collection[str], at: datetime) -> set[str]:
    """Those of ``patient_ids`` whose last opt-out change at or before ``at`` opted them out."""
    o = access_research_optout.c
    wanted, moment = sorted(set(patient_ids)), stamp(at)
    last: dict[str, bool] = {}
    for start in range(0, len(wanted), BATCH):
        query = (
            select(o.patient_id, o.opted_out)
            .where(o.patient_id.in_(wanted[start : start + BATCH]), o.changed_at <= moment)
            .order_by(o.patient_id, o.changed_at)
        )
        for row in conn.execute(query):
            last[row.patient_id] = bool(row.opted_out)  # later changes overwrite earlier ones
    return {patient_id for patient_id, out in last.items() if out}
