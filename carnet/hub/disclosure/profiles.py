"""Disclosure-control profiles: the rules one permit's outputs are checked against.

Two presets. ``opensafely`` follows OpenSAFELY's output rules: a count of 7 or less is redacted,
the others are rounded to the nearest 5 (or, as an option, "midpoint 6": the middle of the block
of six that holds them), and totals are recomputed from the rounded cells. ``acro-default``
follows ACRO 1.0.2's default risk appetite: a cell of fewer than 10 contributors, an empty cell of
a frequency table, a cell dominated by its 2 largest contributors (90 % or more of the total: the
N-K rule) or whose contributors beyond the 2 largest are under 10 % of the largest (the p-ratio
rule) is suppressed, and counts are rounded to the nearest 5.

Order: suppress first, then round what is left (a suppressed cell is never rounded into sight,
and a true 7 never leaves as 5). Tie rule, written down once: rounding to a base is half up
(12.5 -> 15 with base 5, 15 -> 20 with base 10), computed on integers so no float decides it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Rounding = Literal["none", "nearest", "midpoint6"]

DEFAULT_ALLOWED_TYPES: frozenset[str] = frozenset({".csv", ".json", ".txt", ".png"})
DEFAULT_MAX_ROWS = 5_000
DEFAULT_MAX_BYTES = 1_000_000
PATIENT_ID_COLUMNS: frozenset[str] = frozenset({"person_id", "patient_id", "nir", "ins", "subject"})


@dataclass(frozen=True)
class DisclosureProfile:
    """What is disclosive in an output and how the rest is rounded.

    ``min_count``: a cell with fewer contributors is suppressed (OpenSAFELY's "7 or less"
    is ``min_count=8``). ``nk_n``/``nk_k`` and ``p_ratio`` apply to tables of sums and means;
    ``None`` turns a check off."""

    name: str
    min_count: int
    zeros_disclosive: bool
    rounding: Rounding
    rounding_base: int
    nk_n: int | None
    nk_k: float | None
    p_ratio: float | None
    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES
    allowed_types: frozenset[str] = DEFAULT_ALLOWED_TYPES

    def with_midpoint6(self) -> DisclosureProfile:
        """The same profile with OpenSAFELY's "midpoint 6" rounding instead of nearest 5."""
        return replace(self, name=f"{self.name}+midpoint6", rounding="midpoint6", rounding_base=6)


OPENSAFELY = DisclosureProfile(
    name="opensafely",
    min_count=8,
    zeros_disclosive=True,  # 0 is a count of 7 or less
    rounding="nearest",
    rounding_base=5,
    nk_n=None,
    nk_k=None,
    p_ratio=None,
)

ACRO_DEFAULT = DisclosureProfile(
    name="acro-default",
    min_count=10,
    zeros_disclosive=True,
    rounding="nearest",
    rounding_base=5,
    nk_n=2,
    nk_k=0.9,
    p_ratio=0.1,
)

PRESETS: dict[str, DisclosureProfile] = {
    "opensafely": OPENSAFELY,
    "opensafely-midpoint6": OPENSAFELY.with_midpoint6(),
    "acro-default": ACRO_DEFAULT,
}


def profile_named(name: str) -> DisclosureProfile:
    """The preset called ``name``; ValueError for an unknown one."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown disclosure profile {name!r}") from None


def rounded(value: int, profile: DisclosureProfile) -> int:
    """A count rounded as the profile says (the reference the SQL in tables.py follows)."""
    base = profile.rounding_base
    if profile.rounding == "none" or value == 0:
        return value
    if profile.rounding == "midpoint6":
        return -(-value // 6) * 6 - 3  # the middle of the block of six that holds it: 1..6 -> 3
    return (2 * value + base) // (2 * base) * base  # half up, in integers


def at_least_as_strict(candidate: DisclosureProfile, floor: DisclosureProfile) -> bool:
    """Whether ``candidate`` suppresses every cell ``floor`` suppresses and rounds at least as
    coarsely, so a researcher may choose it for a release instead of their permit's profile."""
    if candidate.min_count < floor.min_count or floor.zeros_disclosive > candidate.zeros_disclosive:
        return False
    if floor.nk_k is not None and (
        candidate.nk_k is None
        or candidate.nk_k > floor.nk_k
        or (candidate.nk_n or 0) < (floor.nk_n or 0)
    ):
        return False
    if floor.p_ratio is not None and (
        candidate.p_ratio is None or candidate.p_ratio < floor.p_ratio
    ):
        return False
    if floor.rounding == "none":
        return True
    return candidate.rounding != "none" and candidate.rounding_base >= floor.rounding_base


def choosable_profiles(permit_profile: str) -> tuple[str, ...]:
    """The presets a release of a permit with ``permit_profile`` may use: its own first, then
    every stricter one."""
    floor = profile_named(permit_profile)
    stricter = [
        name
        for name, profile in PRESETS.items()
        if name != permit_profile and at_least_as_strict(profile, floor)
    ]
    return (permit_profile, *sorted(stricter))
