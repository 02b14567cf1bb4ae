"""Rules for the known scenarios of abnormal access, each with the reason an officer reads.

They run on unexplained episodes only, after the unsupervised scorer, and add to its score: a
known pattern (snooping on a relative, a neighbour, a colleague, a celebrity; a mass export;
stolen credentials used at night; a list of records walked in order) ranks above a merely unusual
access. Reasons are words and counts, never names or clinical content.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from carnet.watch.features import Episode


@dataclass(frozen=True)
class Rule:
    """A known scenario: its reason code, what it adds to the score, and when it holds."""

    reason: str
    weight: float
    holds: Callable[[Episode], bool]


def _v(name: str) -> Callable[[Episode], float]:
    return lambda e: e.value(name)


def _at_least(name: str, threshold: float) -> Callable[[Episode], bool]:
    get = _v(name)
    return lambda e: get(e) >= threshold


_log = math.log1p

RULES: tuple[Rule, ...] = (
    # a relative: the same surname and address as the professional, outside their unit
    Rule(
        "family",
        2.0,
        lambda e: e.value("same_address") > 0 and e.value("unit_patient") == 0,
    ),
    Rule(
        "same-surname",
        0.6,
        lambda e: e.value("same_surname") > 0 and e.value("unit_patient") == 0,
    ),
    Rule(
        "neighbour",
        1.6,
        lambda e: (
            e.value("same_street") > 0
            and e.value("same_address") == 0
            and e.value("unit_patient") == 0
        ),
    ),
    Rule("vip", 1.4, lambda e: e.value("vip") > 0 and e.value("unit_patient") == 0),
    Rule("colleague", 1.4, lambda e: e.value("staff") > 0 and e.value("unit_patient") == 0),
    Rule("mass-export", 2.0, _at_least("exports", _log(20))),
    Rule(
        "stolen-credentials",
        2.0,
        lambda e: (
            e.value("failed_sign_ins") >= _log(3)
            and e.value("new_source") > 0
            and e.value("off_hours") > 0.5
        ),
    ),
    Rule(
        "sequential-browsing",
        1.2,
        lambda e: e.value("sequential") >= 0.6 and e.value("unexplained_records") >= _log(15),
    ),
    Rule("emergency-frequency", 0.8, _at_least("emergency_excess", _log(4))),
    Rule(
        "volume-spike",
        0.6,
        lambda e: e.value("volume_ratio") >= 3.0 and e.value("unexplained_records") >= _log(10),
    ),
    Rule("off-hours", 0.3, lambda e: e.value("off_hours") > 0.5),
)


def matched(episode: Episode) -> list[Rule]:
    """The rules an unexplained episode meets, heaviest first."""
    return sorted((r for r in RULES if r.holds(episode)), key=lambda r: -r.weight)
