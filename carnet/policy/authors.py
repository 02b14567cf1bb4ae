"""Who wrote an item: recorded at its creation from the authenticated caller, never from its body.

A professional reads back what they deposited (the ``author`` relationship) and nothing more of
the record; persons and their apps never change what care wrote; only items written by care may
be hidden from the patient (``INVISIBLE_PATIENT``). Writing someone else's RPPS in a body changes
none of this. Items written by system callers (imports of a care organisation's data), like
items written before authors were recorded, have no row: they count as written by care.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select, tuple_

from carnet.caller import Authorship, Kind, Principal
from carnet.db.instants import stamp
from carnet.policy.models import access_author, access_block


def authorship_of(principal: Principal) -> Authorship | None:
    """The authorship a write by ``principal`` records; None for system callers (their items,
    like items written before authors were recorded, count as written by care)."""
    if principal.kind is Kind.PROFESSIONAL and principal.rpps:
        return Authorship(Kind.PROFESSIONAL.value, principal.rpps)
    if principal.kind is Kind.PERSON:
        return Authorship(Kind.PERSON.value, principal.subject)
    if principal.kind is Kind.APP:
        return Authorship(Kind.APP.value, principal.client_id or principal.subject)
    return None


def authorship(conn: Connection, res_type: str, res_id: str) -> Authorship | None:
    """Who wrote the resource's first version; None if a system caller did, or if it was
    written before authors were recorded."""
    a = access_author.c
    row = conn.execute(
        select(a.author_kind, a.author).where(a.res_type == res_type, a.res_id == res_id)
    ).first()
    return None if row is None else Authorship(row.author_kind, row.author)


def record_authors(
    conn: Connection, principal: Principal, created: Sequence[tuple[str, str]]
) -> None:
    """Record ``principal`` as the author of the (type, id) items it has just created; an item
    that has an author already keeps it (a deleted item created again)."""
    author = authorship_of(principal)
    if author is None or not created:
        return
    a = access_author.c
    known = {
        (row.res_type, row.res_id)
        for row in conn.execute(
            select(a.res_type, a.res_id).where(tuple_(a.res_type, a.res_id).in_(list(created)))
        )
    }
    rows = [
        {
            "res_type": res_type,
            "res_id": res_id,
            "author_kind": author.kind,
            "author": author.author,
            "created_at": stamp(),
        }
        for res_type, res_id in dict.fromkeys(created)
        if (res_type, res_id) not in known
    ]
    if rows:
        conn.execute(insert(access_author), rows)


def set_author(conn: Connection, res_type: str, res_id: str, author: Authorship | None) -> None:
    """Make ``author`` the author of an item just created on their behalf (a held deposit
    released by someone else's write), replacing whoever the create recorded; None: care."""
    a = access_author.c
    conn.execute(delete(access_author).where(a.res_type == res_type, a.res_id == res_id))
    if author is not None:
        conn.execute(
            insert(access_author).values(
                res_type=res_type,
                res_id=res_id,
                author_kind=author.kind,
                author=author.author,
                created_at=stamp(),
            )
        )


def blocked_author(conn: Connection, author: Authorship | None, patient_id: str) -> bool:
    """Whether ``author`` is a professional ``patient_id`` blocked (the ``pro-blocked`` rule):
    a deposit of theirs released later by someone else's action is still their write, and a
    block refuses it as it refuses their own create."""
    if author is None or author.kind != Kind.PROFESSIONAL.value:
        return False
    b = access_block.c
    found = conn.execute(
        select(b.rpps).where(b.patient_id == patient_id, b.rpps == author.author).limit(1)
    ).first()
    return found is not None
