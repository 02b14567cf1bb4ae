"""Who among the professionals still sees an item, as the policy decision point decides it.

The candidates are the professionals the record knows: those with a care relationship (declared,
from an encounter; the médecin traitant among them), those with an emergency grant in force, and
the item's author. For each, the PDP decides a read of the item with its flags as they are and
as they would be with ``MASQUE_PS``: the preview a patient sees before masking is the policy's
own answer, never a rule recomputed for the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, select

from carnet.caller import Kind, Principal
from carnet.db.instants import stamp, utc_now
from carnet.policy.authors import authorship
from carnet.policy.models import access_break_glass, access_care
from carnet.policy.service import MASQUE_PS, PolicyDecisionPoint


@dataclass(frozen=True)
class Viewer:
    """A professional who reads the item, and the rule that lets them (``medecin-traitant-read``,
    ``physician-read``, ``author-read``, ``break-glass-read``...)."""

    rpps: str
    profession: str | None
    rule: str


@dataclass(frozen=True)
class Audience:
    now: list[Viewer]  # with the item's flags as they are
    if_masked: list[Viewer]  # with MASQUE_PS set


def audience(
    conn: Connection,
    pdp: PolicyDecisionPoint,
    patient_id: str,
    res_type: str,
    res_id: str,
    profession_of: Callable[[str], str | None],
) -> Audience:
    """The professionals who read ``res_type/res_id`` of ``patient_id`` now, and if masked."""
    c, b = access_care.c, access_break_glass.c
    candidates = set(conn.execute(select(c.rpps).where(c.patient_id == patient_id)).scalars())
    candidates |= set(
        conn.execute(
            select(b.rpps).where(b.patient_id == patient_id, b.expires_at > stamp(utc_now()))
        ).scalars()
    )
    author = authorship(conn, res_type, res_id)
    if author is not None and author.kind == Kind.PROFESSIONAL.value:
        candidates.add(author.author)
    flags = pdp.flags(conn, res_type, res_id)
    now: list[Viewer] = []
    masked: list[Viewer] = []
    for rpps in sorted(candidates):
        profession = profession_of(rpps)
        who = Principal(Kind.PROFESSIONAL, f"rpps:{rpps}", rpps=rpps, profession=profession)
        for wanted, into in ((flags, now), (flags | {MASQUE_PS}, masked)):
            decision = pdp.decide(conn, who, "read", res_type, patient_id, wanted, author)
            if decision.allowed:
                into.append(Viewer(rpps, profession, decision.rule))
    return Audience(now, masked)
