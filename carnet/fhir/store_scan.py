"""Read-only scans of a whole store, beside the repository that owns resource rows.

A bulk export, a research extraction, the backup's digests and the in-record search's change
check each walk many rows of a unit at once; the repository keeps one resource at a time. Only
the FHIR engine calls these (a FhirSession for its caller, integrity.py for the operator), which
tests/unit/fhir/test_caller_bound.py enforces.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement, select

from carnet.fhir.models import resource
from carnet.fhir.repository import StoredResource, Unit


def compartment_versions(
    unit: Unit, patient_id: str, where: ColumnElement[bool] | None = None
) -> list[tuple[str, str, int]]:
    """(type, id, version) of the current resources of one patient's compartment, nothing
    decrypted: for a caller that keeps what it derived from each version (the in-record
    search's analyses) and loads only the versions it has not seen."""
    unit.flush()
    query = select(resource.c.res_type, resource.c.res_id, resource.c.version).where(
        resource.c.patient_id == patient_id,
        resource.c.current,
        resource.c.deleted.is_(False),
    )
    if where is not None:
        query = query.where(where)
    return [(r[0], r[1], r[2]) for r in unit.conn.execute(query.order_by(resource.c.seq))]


def iter_current(
    unit: Unit,
    types: Sequence[str] | None = None,
    since: str | None = None,
    patient_ids: Sequence[str] | None = None,
    batch: int = 500,
    *,
    inflate: bool = True,
) -> Iterator[list[StoredResource]]:
    """Current resources in batches, oldest first, for exports (memory stays flat); erased
    (crypto-shredded) ones are left out; ``inflate=False`` leaves attachments' data out (a
    research extraction reads none)."""
    unit.flush()
    last_seq = 0
    while True:
        query = select(resource).where(
            resource.c.current, resource.c.deleted.is_(False), resource.c.seq > last_seq
        )
        if types:
            query = query.where(resource.c.res_type.in_(list(types)))
        if since:
            query = query.where(resource.c.last_updated >= since)
        if patient_ids is not None:
            query = query.where(resource.c.patient_id.in_(list(patient_ids)))
        rows = unit.conn.execute(query.order_by(resource.c.seq).limit(batch)).all()
        if not rows:
            return
        last_seq = rows[-1].seq
        yield unit.decode_readable(rows, inflate=inflate)


def raw_bodies(unit: Unit) -> Iterator[tuple[str, str, int, bytes | None]]:
    """Every stored version's ciphertext as it is on disk (backup digests, key reports, tests
    that prove nothing is stored in clear)."""
    for row in unit.conn.execute(
        select(resource.c.res_type, resource.c.res_id, resource.c.version, resource.c.body)
    ):
        yield row.res_type, row.res_id, row.version, row.body
