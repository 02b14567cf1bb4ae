"""What a quarantined deposit keeps: the document as it will be attached and who deposited it;
and the vigilance item that keeps a held document in the officer's sight.

A held document is released later by someone else's action (the Patient written, a merge, a
dismissal); its author is the depositor recorded here, never the caller who released it. Rows
held before the depositor was kept are the bare document: released with no author (care).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from sqlalchemy import Connection, insert, select, update

from carnet.caller import Authorship
from carnet.fhir.dates import utc_now
from carnet.identity.models import quarantine, vigilance_item

log = logging.getLogger("carnet.identity")

_ENVELOPE = "carnet-held"  # marks the wrapped form (a FHIR resource has no such key)


def seal_held(document: dict[str, Any], author: Authorship | None) -> bytes:
    """The clear bytes of a held deposit (encrypted by the caller): document and depositor."""
    depositor = None if author is None else [author.kind, author.author]
    return json.dumps({_ENVELOPE: 1, "resource": document, "author": depositor}).encode()


def open_held(clear: bytes) -> tuple[dict[str, Any], Authorship | None]:
    """The document and depositor of a held deposit's clear bytes (see :func:`seal_held`)."""
    loaded: dict[str, Any] = json.loads(clear)
    if _ENVELOPE not in loaded:
        return loaded, None
    depositor = loaded.get("author")
    author = None if depositor is None else Authorship(str(depositor[0]), str(depositor[1]))
    return dict(loaded["resource"]), author


def new_item(
    conn: Connection,
    kind: str,
    pending: str,
    candidate: str | None,
    weight: float | None,
    evidence: dict[str, Any],
) -> str:
    """Open a vigilance item on the pending identity ``pending``; returns its id."""
    item_id = str(uuid.uuid4())
    conn.execute(
        insert(vigilance_item).values(
            id=item_id,
            kind=kind,
            state="open",
            identity_id=pending,
            candidate_id=candidate,
            weight=weight,
            evidence=json.dumps(evidence),
            created_at=utc_now(),
        )
    )
    log.info("identity %s sent to vigilance item %s (%s)", pending, item_id, kind)
    return item_id


def holds(conn: Connection, ident_id: str) -> bool:
    """Whether a document is still held for ``ident_id``."""
    held = conn.execute(
        select(quarantine.c.id).where(
            quarantine.c.identity_id == ident_id, quarantine.c.released_at.is_(None)
        )
    ).first()
    return held is not None


def keep_in_sight(conn: Connection, ident_id: str, reason: str) -> None:
    """A document still held for ``ident_id`` (its depositor blocked by the patient) keeps an
    open item in the queue: closing the last one would leave it held where no officer ever
    sees it again. Opens one unless the identity already has one."""
    waiting = conn.execute(
        select(vigilance_item.c.id).where(
            vigilance_item.c.identity_id == ident_id, vigilance_item.c.state == "open"
        )
    ).first()
    if waiting is None and holds(conn, ident_id):
        new_item(conn, "held", ident_id, None, None, {"reason": reason})


def hand_over(conn: Connection, source_id: str, target_id: str) -> list[str]:
    """The documents a merge leaves held under its source (none is lost with the merged
    identity): the target's from now on, their quarantine ids returned for the unmerge."""
    rows = conn.execute(
        select(quarantine.c.id).where(
            quarantine.c.identity_id == source_id, quarantine.c.released_at.is_(None)
        )
    ).all()
    kept = [r.id for r in rows]
    if kept:
        conn.execute(
            update(quarantine).where(quarantine.c.id.in_(kept)).values(identity_id=target_id)
        )
    return kept
