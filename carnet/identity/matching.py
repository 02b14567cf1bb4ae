"""Fellegi-Sunter scoring of two identity records, explainable.

A :class:`Comparison` puts a pair of records at one of its levels (the last is "else"; ``None``
means a value is missing, which weighs nothing). A :class:`MatchModel` holds, for every level, m (the
probability of that level among true matches) and u (among non-matches) and a prior ``lambda_``
(probability that two compared records match). The match weight of a pair is
``log2(lambda_ / (1 - lambda_)) + sum(log2(m / u))``, its probability ``2^w / (1 + 2^w)``.

The same engine scores the identity traits (:func:`identity_model`) and, in the benchmark, other
record layouts (FEBRL) with other comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import jellyfish

from carnet.identity.phonetic import phonetic_key

__all__ = [
    "VETO",
    "Comparison",
    "ComparisonResult",
    "MatchModel",
    "Score",
    "compare_dates",
    "compare_family_names",
    "compare_given_names",
    "identity_model",
    "vetoed_gamma",
]

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Comparison:
    """One compared attribute: its level names (last = "else") and the function choosing one."""

    name: str
    levels: tuple[str, ...]
    level_of: Callable[[Record, Record], int | None]


@dataclass(frozen=True)
class ComparisonResult:
    """Why a pair scored what it did on one comparison."""

    comparison: str
    level: str
    m: float
    u: float
    weight: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the API."""
        return {
            "comparison": self.comparison,
            "level": self.level,
            "m": self.m,
            "u": self.u,
            "weight": round(self.weight, 3),
        }


@dataclass(frozen=True)
class Score:
    """A pair's total match weight, its probability and the evidence behind it."""

    weight: float
    probability: float
    details: tuple[ComparisonResult, ...]
    prior_weight: float

    def level(self, comparison: str) -> str | None:
        """The level a comparison reached (None when a value was missing)."""
        return next((d.level for d in self.details if d.comparison == comparison), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the API."""
        return {
            "weight": round(self.weight, 3),
            "probability": self.probability,
            "prior_weight": round(self.prior_weight, 3),
            "comparisons": [d.as_dict() for d in self.details],
        }


@dataclass(frozen=True)
class MatchModel:
    """Comparisons with their m and u probabilities per level, and the prior."""

    comparisons: tuple[Comparison, ...]
    m: Mapping[str, Sequence[float]]
    u: Mapping[str, Sequence[float]]
    lambda_: float
    _weights: dict[str, tuple[float, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for c in self.comparisons:
            m, u = self.m[c.name], self.u[c.name]
            if not len(m) == len(u) == len(c.levels):
                raise ValueError(f"comparison {c.name}: m/u need {len(c.levels)} values")
            self._weights[c.name] = tuple(
                math.log2(max(mi, 1e-12) / max(ui, 1e-12)) for mi, ui in zip(m, u, strict=True)
            )

    @property
    def prior_weight(self) -> float:
        """log2 of the prior odds of a match."""
        return math.log2(self.lambda_ / (1 - self.lambda_))

    def with_parameters(
        self,
        m: Mapping[str, Sequence[float]],
        u: Mapping[str, Sequence[float]],
        lambda_: float,
    ) -> MatchModel:
        """The same comparisons with new (trained) parameters."""
        return replace(self, m=dict(m), u=dict(u), lambda_=lambda_, _weights={})

    def gamma(self, a: Record, b: Record) -> tuple[int | None, ...]:
        """The comparison vector: one level index (or None) per comparison."""
        return tuple(c.level_of(a, b) for c in self.comparisons)

    def weight_of(self, gamma: Sequence[int | None]) -> float:
        """Total match weight of a comparison vector."""
        total = self.prior_weight
        for c, level in zip(self.comparisons, gamma, strict=True):
            if level is not None:
                total += self._weights[c.name][level]
        return total

    def score(self, a: Record, b: Record) -> Score:
        """Score a pair, with the evidence for each comparison."""
        details = []
        total = self.prior_weight
        for c in self.comparisons:
            level = c.level_of(a, b)
            if level is None:
                continue
            w = self._weights[c.name][level]
            total += w
            details.append(
                ComparisonResult(
                    c.name, c.levels[level], self.m[c.name][level], self.u[c.name][level], w
                )
            )
        return Score(total, _probability(total), tuple(details), self.prior_weight)

    def parameters(self) -> dict[str, Any]:
        """m, u and lambda as JSON (what `carnet identity train` stores)."""
        return {
            "lambda": self.lambda_,
            "m": {k: list(v) for k, v in self.m.items()},
            "u": {k: list(v) for k, v in self.u.items()},
        }


def _probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    odds = math.pow(2.0, weight)
    return odds / (1 + odds)


# ---- comparison functions for identity traits


def _jw(a: str, b: str) -> float:
    return float(jellyfish.jaro_winkler_similarity(a, b))


def _names(record: Record, key: str) -> list[str]:
    value = record.get(key)
    return [] if not value else [value] if isinstance(value, str) else list(value)


FAMILY_LEVELS = ("exact", "exact_other_name", "jw_0.94", "jw_0.88", "phonetic", "else")


def compare_family_names(a: Record, b: Record) -> int | None:
    """Birth names; a usage (married) name on either side counts as a weaker exact level."""
    x, y = a.get("birth_name"), b.get("birth_name")
    if not x or not y:
        return None
    if x == y:
        return 0
    others_a = {x, *_names(a, "used_name")}
    others_b = {y, *_names(b, "used_name")}
    if others_a & others_b:
        return 1
    similarity = _jw(x, y)
    if similarity >= 0.94:
        return 2
    if similarity >= 0.88:
        return 3
    if phonetic_key(x) == phonetic_key(y):
        return 4
    return 5


GIVEN_LEVELS = ("exact", "same_names_other_order", "jw_0.94", "jw_0.88", "phonetic", "else")


def compare_given_names(a: Record, b: Record) -> int | None:
    """First names: the first one, then the same list in another order, then the first one fuzzily."""
    xs, ys = _names(a, "given_names"), _names(b, "given_names")
    if not xs or not ys:
        return None
    x, y = xs[0], ys[0]
    if x == y:
        return 0
    # The same names in another order. Sharing only some names is not evidence: twins often do
    # ("JEANNE MARIE" and "LOUISE MARIE"), so that falls through to the first-name comparison.
    if len(xs) > 1 and sorted(xs) == sorted(ys):
        return 1
    similarity = _jw(x, y)
    if similarity >= 0.94:
        return 2
    if similarity >= 0.88:
        return 3
    if phonetic_key(x) == phonetic_key(y):
        return 4
    return 5


DATE_LEVELS = ("exact", "day_month_swapped", "one_field_differs", "else")


def compare_dates(a: Record, b: Record) -> int | None:
    """Birth dates: exact, day and month swapped, one of day/month/year differs, else."""
    x, y = a.get("birth_date"), b.get("birth_date")
    if not isinstance(x, date) or not isinstance(y, date):
        return None
    if x == y:
        return 0
    if (x.day, x.month, x.year) == (y.month, y.day, y.year):
        return 1
    same = (x.year == y.year) + (x.month == y.month) + (x.day == y.day)
    return 2 if same == 2 else 3


def _compare_sex(a: Record, b: Record) -> int | None:
    x, y = a.get("sex"), b.get("sex")
    if not x or not y:
        return None
    return 0 if x == y else 1


def _compare_place(a: Record, b: Record) -> int | None:
    x, y = a.get("birth_place"), b.get("birth_place")
    if not x or not y:
        return None
    if x == y:
        return 0
    # Same French department; "99" + country code abroad: two countries are simply different.
    return 1 if x[:2] == y[:2] and not x.startswith("99") else 2


IDENTITY_COMPARISONS: tuple[Comparison, ...] = (
    Comparison("family_name", FAMILY_LEVELS, compare_family_names),
    Comparison("given_names", GIVEN_LEVELS, compare_given_names),
    Comparison("birth_date", DATE_LEVELS, compare_dates),
    Comparison("sex", ("exact", "else"), _compare_sex),
    Comparison("birth_place", ("exact", "same_department", "else"), _compare_place),
)

# Starting parameters, before `carnet identity train` estimates them from the index. u values are
# frequencies among random pairs of a French population; m values leave room for the errors that
# identity vigilance sees (typos, inverted first names, day/month swaps, missing birth place).
# "else" on first names weighs heavily: twins and homonyms share everything but the first name.
DEFAULT_M: dict[str, tuple[float, ...]] = {
    "family_name": (0.88, 0.04, 0.04, 0.015, 0.01, 0.015),
    "given_names": (0.88, 0.05, 0.04, 0.015, 0.01, 0.005),
    "birth_date": (0.94, 0.02, 0.035, 0.005),
    "sex": (0.995, 0.005),
    "birth_place": (0.93, 0.03, 0.04),
}
DEFAULT_U: dict[str, tuple[float, ...]] = {
    "family_name": (0.002, 0.0005, 0.002, 0.006, 0.005, 0.9845),
    "given_names": (0.008, 0.002, 0.004, 0.01, 0.01, 0.966),
    "birth_date": (0.00004, 0.00001, 0.003, 0.99695),
    "sex": (0.5, 0.5),
    "birth_place": (0.002, 0.03, 0.968),
}
DEFAULT_LAMBDA = 1e-6

# Comparisons whose "else" level means "not the same person, or an error a human must see": a pair
# at one of them is never linked automatically, whatever its weight. Twins differ only by first
# name (and perhaps sex); homonyms only by birth place.
VETO = frozenset({"family_name", "given_names", "birth_date", "sex", "birth_place"})


def vetoed_gamma(model: MatchModel, gamma: Sequence[int | None]) -> bool:
    """Whether a comparison vector has a strict trait at its "else" level."""
    return any(
        c.name in VETO and level == len(c.levels) - 1
        for c, level in zip(model.comparisons, gamma, strict=True)
    )


def identity_model() -> MatchModel:
    """The identity traits model with its starting parameters."""
    return MatchModel(IDENTITY_COMPARISONS, DEFAULT_M, DEFAULT_U, DEFAULT_LAMBDA)
