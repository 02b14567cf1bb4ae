"""What a history interaction covers (``<Type>/<id>/_history``, ``<Type>/_history``,
``/_history``), as SQL the repository runs: the versions it reads and pages, and the records
its total tells of.

One condition for both, so the total a caller is shown and the records its audit event names
are the same versions (the caller's visibility, ``query.visible_versions``, included).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, literal, select

from carnet.fhir.models import resource


def history_versions(
    res_type: str | None,
    res_id: str | None,
    *,
    since: str | None,
    where: ColumnElement[bool] | None = None,
) -> ColumnElement[bool] | None:
    """The versions of one instance, one type or the system (None: every version), updated
    at or after ``since``; ``where`` restricts them to what the caller may see."""
    conds = [] if where is None else [where]
    if res_type:
        conds.append(resource.c.res_type == res_type)
    if res_id:
        conds.append(resource.c.res_id == res_id)
    if since:
        conds.append(resource.c.last_updated >= since)
    return and_(*conds) if conds else None


def history_records(versions: ColumnElement[bool] | None) -> Select[Any]:
    """("Patient", id) of each record holding a version ``versions`` covers: the records a
    history's total told of, for its audit event (as ``Compiler.counted_records`` for a search's
    count)."""
    query = select(literal("Patient"), resource.c.patient_id).where(
        resource.c.patient_id.is_not(None)
    )
    if versions is not None:
        query = query.where(versions)
    return query.distinct()
