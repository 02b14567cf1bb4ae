"""What tells two identity records apart whatever their weights: the rules never traded for recall.

- Two valid INS that differ are two people (DESIGN.md, "Identity rules that are never traded for
  recall"); the one exception is an NIA the reference register says was replaced by a NIR.
  :func:`ins_differ` is that rule; online matching drops such a candidate and batch dedupe never
  lists such a pair, as for a pair a human dismissed.
- Two complete lists of first names that disagree after an identical first one ("MARIE ANNE" and
  "MARIE LOUISE": twins often share the first) are a doubt, not evidence: never linked
  automatically, left to the vigilance queue (:func:`other_first_names_differ`).

Records are the mappings the scoring functions compare; ``ins`` holds ``(system, value)`` or None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from carnet.identity.ins import INS_NIA_OID, INS_NIR_OID, Ins

__all__ = [
    "Successor",
    "ins_differ",
    "ins_of",
    "name_two_people",
    "no_successor",
    "other_first_names_differ",
]

Record = Mapping[str, Any]
Successor = Callable[[Ins], Ins | None]
"""The NIR that replaced an NIA, as the reference register says (None: not replaced)."""


def no_successor(_ins: Ins) -> Ins | None:
    """No register to ask: no NIA is known to be replaced."""
    return None


def ins_of(record: Record) -> Ins | None:
    """The INS a record carries (``ins``: ``(system, value)``), or None."""
    value = record.get("ins")
    if not value:
        return None
    system, matricule = value
    return Ins(str(system), str(matricule))


def _replaced(nia: Ins, nir: Ins, successor: Successor) -> bool:
    return nia.system == INS_NIA_OID and nir.system == INS_NIR_OID and successor(nia) == nir


def ins_differ(a: Record, b: Record, successor: Successor = no_successor) -> bool:
    """Whether both records carry an INS and they name two people.

    Equal INS name one person; so do an NIA and the NIR the register says replaced it.
    """
    x, y = ins_of(a), ins_of(b)
    if x is None or y is None or x == y:
        return False
    return not (_replaced(x, y, successor) or _replaced(y, x, successor))


def name_two_people(inses: Sequence[Ins], successor: Successor = no_successor) -> bool:
    """Whether the INS identifiers of one Patient name two people.

    A Patient carries one person's INS (an NIA and the NIR the register says replaced it are one
    person). One carrying two would be matched on whichever comes first, the identity would adopt
    it, and documents deposited by that INS for its real holder would land in this record: such a
    Patient is refused, as two valid INS that differ are never joined.
    """
    return any(
        x != y and not (_replaced(x, y, successor) or _replaced(y, x, successor))
        for i, x in enumerate(inses)
        for y in inses[i + 1 :]
    )


def other_first_names_differ(a: Record, b: Record) -> bool:
    """Whether two lists of several first names disagree beyond the first one.

    A list cut short ("MARIE" against "MARIE ANNE") or the same names in another order is an
    ordinary entry error; a later name of one list found nowhere in the other, when both lists have
    one there, is not. Names are compared exactly: "AUGUSTE" and "AUGUSTIN" are twins' names as
    often as a typo, and a typo in a later first name costs a review, not a wrong link.
    """
    xs, ys = list(a.get("given_names") or []), list(b.get("given_names") or [])
    if len(xs) < 2 or len(ys) < 2 or sorted(xs) == sorted(ys):
        return False
    for later, other in ((xs[1:], ys), (ys[1:], xs)):
        if any(name not in other for name in later[: len(other) - 1]):
            return True
    return False
