"""What a matching decision works with and how it is made: the incoming identity, the scored
candidates, the outcome (link, vigilance queue, new identity) and the rule that chooses it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from carnet.identity.ins import (
    Ins,
    InsStatus,
    InvalidTraits,
    Traits,
    ins_from_patient,
    normalise_name,
    status_from_patient,
    traits_from_patient,
)
from carnet.identity.matching import VETO, Score, identity_model

_VETO = VETO


class IdentityConflict(ValueError):  # noqa: N818 - domain term
    """A qualified INS whose traits disagree with the reference register: nothing is done."""


class VigilanceError(ValueError):
    """A vigilance action that cannot apply (unknown item, already resolved...); ``status`` is
    how it is answered and audited: 404 for what does not exist, 409 for what cannot be done."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Outcome(StrEnum):
    """The three decisions."""

    LINK = "link"
    REVIEW = "review"
    NEW = "new"


@dataclass(frozen=True)
class IdentityInput:
    """An incoming identity: strict traits, status, INS and usage names."""

    traits: Traits
    status: InsStatus = InsStatus.PROV
    ins: Ins | None = None
    used_names: tuple[str, ...] = ()
    patient_id: str | None = None

    def record(self) -> dict[str, Any]:
        """The form the scoring and blocking functions compare."""
        return {
            "birth_name": self.traits.birth_name,
            "given_names": list(self.traits.given_names),
            "birth_date": self.traits.birth_date,
            "sex": self.traits.sex,
            "birth_place": self.traits.birth_place,
            "used_name": [normalise_name(n, field="usage name") for n in self.used_names],
            "ins": None if self.ins is None else (self.ins.system, self.ins.value),
        }


@dataclass(frozen=True)
class Candidate:
    """A stored identity an incoming one was scored against."""

    identity_id: str
    patient_id: str | None
    score: Score

    def as_dict(self) -> dict[str, Any]:
        """JSON form (ids, levels and weights only)."""
        return {
            "identity": self.identity_id,
            "patient": self.patient_id,
            **self.score.as_dict(),
        }


@dataclass(frozen=True)
class MatchResult:
    """A decision, the identity it leads to and the evidence behind it."""

    outcome: Outcome
    reason: str
    candidates: tuple[Candidate, ...] = ()
    identity_id: str | None = None  # linked, new or pending identity
    patient_id: str | None = None  # the Patient data may be attached to (on a link)
    item_id: str | None = None  # the vigilance item, on review
    quarantine_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "identity": self.identity_id,
            "patient": self.patient_id,
            "vigilanceItem": self.item_id,
            "quarantine": self.quarantine_id,
            "candidates": [c.as_dict() for c in self.candidates],
        }


@dataclass
class StoredIdentity:
    id: str
    patient_id: str | None
    status: str
    state: str
    record: dict[str, Any]
    ins: Ins | None = field(default=None)


def patient_identity(patient: dict[str, Any]) -> IdentityInput:
    """The identity a FHIR Patient carries: official name = birth traits, usual names = usage.

    Raises:
        InvalidTraits: when a strict trait is missing or invalid, or the INS is invalid, or an
            element has the wrong shape (a name that is a list: the FHIR JSON schema lets it by).
    """
    try:
        return _patient_identity(patient)
    except (AttributeError, TypeError, KeyError):
        raise InvalidTraits(
            "the Patient's name, identifier or extension has the wrong shape"
        ) from None


def _patient_identity(patient: dict[str, Any]) -> IdentityInput:
    traits = traits_from_patient(patient)
    used = tuple(
        str(n["family"])
        for n in patient.get("name", [])
        if n.get("use") in ("usual", "maiden") and n.get("family")
    )
    pid = patient.get("id")
    return IdentityInput(
        traits,
        status_from_patient(patient),
        ins_from_patient(patient),
        tuple(u for u in used if normalise_name(u, field="usage name") != traits.birth_name),
        pid if isinstance(pid, str) else None,
    )


def vetoed(score: Score) -> bool:
    """Whether a strict trait disagrees outright (such a pair is never linked automatically)."""
    return any(d.comparison in _VETO and d.level == "else" for d in score.details)


def choose(
    scored: list[Candidate],
    link: float,
    review: float,
    distinct: Collection[frozenset[str]] = (),
    *,
    other_people: Collection[str] = (),
    doubtful: Collection[str] = (),
) -> MatchResult:
    """The decision among candidates sorted by weight (best first), by the two thresholds.

    ``distinct`` holds pairs of identities a human found to be different people (dismissed
    vigilance items): such a candidate is no rival to the best one. ``other_people`` holds the
    candidates whose valid INS differs from the incoming one: never the identity chosen, whatever
    their weight, but still rivals (a record without an INS that fits two people is a doubt).
    ``doubtful`` holds candidates never linked automatically (first names that disagree beyond
    the first one).
    """
    top = tuple(scored[:5])
    eligible = [c for c in scored if c.identity_id not in other_people]
    if not eligible or eligible[0].score.weight < review:
        if any(c.score.weight >= review for c in scored):
            return MatchResult(Outcome.NEW, "the candidates' INS name other people", top)
        return MatchResult(Outcome.NEW, "no candidate above the review threshold", top)
    best = eligible[0]
    if best.score.weight >= link and not vetoed(best.score):
        # Another plausible candidate (one no strict trait rules out) makes it ambiguous;
        # a twin or homonym of the best candidate does not.
        rivals = [
            c
            for c in scored
            if c is not best
            and c.score.weight >= review
            and not vetoed(c.score)
            and frozenset((best.identity_id, c.identity_id)) not in distinct
        ]
        if rivals:
            return MatchResult(Outcome.REVIEW, "several candidates above the review threshold", top)
        if best.identity_id in doubtful:
            return MatchResult(Outcome.REVIEW, "high score but the other first names disagree", top)
        return MatchResult(
            Outcome.LINK,
            "score above the link threshold",
            top,
            best.identity_id,
            best.patient_id,
        )
    if best.score.weight >= link:
        return MatchResult(Outcome.REVIEW, "high score but a strict trait disagrees", top)
    return MatchResult(Outcome.REVIEW, "score between the review and link thresholds", top)


_LEVELS = identity_model()
"""The identity comparisons; a veto is a level ("else"), whatever the model's weights."""


def another_person(patient: dict[str, Any], known: Mapping[str, Any]) -> bool:
    """Whether a Patient carries the strict traits of someone else than ``known`` (an identity's
    record, as :meth:`IdentityInput.record` gives it): traits the index would never link to it,
    a strict trait at its "else" level, usage names counted on both sides as matching counts
    them. A Patient without valid strict traits is no proof: False.

    The index's one decision of "another person" for a known Patient: an update of a Patient
    that has an identity (:mod:`carnet.identity.updates`) and the register's provisioning of a
    Patient found by INS (:mod:`carnet.record.provisioning`) both ask it, so they cannot judge
    the same Patient differently (provisioning once compared strict traits alone and refused a
    married woman's own Patient opened under her usage name)."""
    try:
        theirs = patient_identity(patient)
    except InvalidTraits:
        return False
    return vetoed(_LEVELS.score(theirs.record(), known))
