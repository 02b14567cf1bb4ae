"""Features of access to records, per access episode and per user-day, from ids and digests only.

An *episode* is what one user did in one patient's record on one (local) day. It is first
*explained* or not: an encounter, an appointment or a care team naming the professional around
that day, the patient's médecin traitant, or an item the professional deposited in the record.
Explained episodes are never scored (most access is care). The others get a feature vector: how
the patient relates to the professional (same surname, address or street, compared as blind-index
digests, never as names), flagged people (VIP, staff), the hours, emergency access and exports in
the episode, and the user's day against their own history (volume, unexplained records, emergency
access, sequential browsing, exports, failed sign-ins, an address never seen).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

LOCAL_ZONE = ZoneInfo("Europe/Paris")  # working hours and days are French ones
EXPLANATION_MARGIN = timedelta(days=2)  # a result read two days after the stay is still care
RARE_HOUR_SHARE = 0.02  # an hour holding under 2% of the user's past access is off their hours
SEQUENTIAL_MIN_PATIENTS = 10  # fewer records than this say nothing about browsing in order

EXPLANATION_KINDS = ("encounter", "appointment", "care-team", "medecin-traitant", "deposit")

FEATURES = (
    "events",  # log of the episode's events
    "unit_patient",  # the patient was in the user's unit (organisation) that day
    "same_surname",
    "same_address",
    "same_street",
    "vip",
    "staff",
    "off_hours",  # share of the episode's events at hours the user rarely works
    "emergency",  # the episode used emergency access (break-glass)
    "export",
    "volume_ratio",  # records opened that day over the user's daily mean
    "unexplained_records",  # log of the day's unexplained records
    "emergency_excess",  # emergency accesses that day beyond the user's habit
    "sequential",  # records opened in id order, one after the other
    "exports",  # log of the day's exports
    "failed_sign_ins",  # log of the day's failed sign-ins
    "new_source",  # an address the user never worked from before
)


@dataclass(frozen=True)
class Access:
    """One access to one patient's record, from one audit event (ids only)."""

    event_id: str
    at: datetime  # aware
    actor: str  # account id
    patient_id: str
    action: str  # read, search, export, break-glass, create, ...
    source: str
    emergency: bool = False  # allowed by emergency access

    @property
    def day(self) -> date:
        return self.at.astimezone(LOCAL_ZONE).date()

    @property
    def hour(self) -> int:
        return self.at.astimezone(LOCAL_ZONE).hour


@dataclass(frozen=True)
class Window:
    """A reason for a professional to be in a record, from ``start`` to ``end`` (None: open)."""

    kind: str  # one of EXPLANATION_KINDS
    start: datetime | None = None
    end: datetime | None = None

    def covers(self, at: datetime) -> bool:
        if self.start is not None and at < self.start - EXPLANATION_MARGIN:
            return False
        return self.end is None or at <= self.end + EXPLANATION_MARGIN


@dataclass
class Evidence:
    """What the features read besides the accesses: ids, dates and digests only."""

    care: dict[tuple[str, str], list[Window]] = field(default_factory=dict)  # (actor, patient)
    unit_of: dict[str, str] = field(default_factory=dict)  # actor -> unit or organisation
    present: dict[tuple[str, date], set[str]] = field(default_factory=dict)  # (unit, day) -> ids
    surname: dict[str, str] = field(default_factory=dict)  # "actor:<id>" / "patient:<id>"
    address: dict[str, str] = field(default_factory=dict)
    street: dict[str, str] = field(default_factory=dict)
    flags: dict[str, frozenset[str]] = field(default_factory=dict)  # patient -> {vip, staff}
    failed_sign_ins: dict[tuple[str, date], int] = field(default_factory=dict)  # (actor, day)

    def explanation(self, actor: str, patient_id: str, at: datetime) -> str | None:
        for window in self.care.get((actor, patient_id), ()):
            if window.covers(at):
                return window.kind
        return None

    def same(self, table: dict[str, str], actor: str, patient_id: str) -> bool:
        mine = table.get(f"actor:{actor}")
        return mine is not None and mine == table.get(f"patient:{patient_id}")


@dataclass
class History:
    """A user's habits over the days before the ones scored."""

    days: int = 0
    records: int = 0
    emergencies: int = 0
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    sources: set[str] = field(default_factory=set)

    def mean_records(self) -> float:
        return self.records / self.days if self.days else 0.0

    def mean_emergencies(self) -> float:
        return self.emergencies / self.days if self.days else 0.0

    def rare_hour(self, hour: int) -> bool:
        total = sum(self.hours)
        return total > 0 and self.hours[hour] < RARE_HOUR_SHARE * total


@dataclass(frozen=True)
class Episode:
    """One user's access to one record on one day, with its explanation and features."""

    actor: str
    patient_id: str
    day: date
    event_ids: tuple[str, ...]
    explanation: str | None
    features: tuple[float, ...]

    def value(self, name: str) -> float:
        return self.features[FEATURES.index(name)]


def histories(accesses: Iterable[Access], before: date) -> dict[str, History]:
    """Each user's habits from their accesses on days before ``before``."""
    found: dict[str, History] = defaultdict(History)
    days: dict[str, set[date]] = defaultdict(set)
    records: dict[tuple[str, date], set[str]] = defaultdict(set)
    for a in accesses:
        day = a.day
        if day >= before:
            continue
        h = found[a.actor]
        days[a.actor].add(day)
        records[(a.actor, day)].add(a.patient_id)
        h.hours[a.hour] += 1
        h.sources.add(a.source)
        if a.action == "break-glass":
            h.emergencies += 1
    for (actor, _), patients in records.items():
        found[actor].records += len(patients)
    for actor, seen in days.items():
        found[actor].days = len(seen)
    return dict(found)


def sequential_share(patients_in_order: Sequence[str]) -> float:
    """How far a day's records were opened in id order (0: random order, 1: a list walked)."""
    distinct: list[str] = []
    for pid in patients_in_order:
        if not distinct or distinct[-1] != pid:
            distinct.append(pid)
    if len(set(distinct)) < SEQUENTIAL_MIN_PATIENTS:
        return 0.0
    rising = sum(1 for a, b in pairwise(distinct) if b > a)
    share = rising / (len(distinct) - 1)
    return max(0.0, 2.0 * share - 1.0)  # random order rises half the time


def episodes(
    accesses: Sequence[Access], evidence: Evidence, history: dict[str, History], days: set[date]
) -> list[Episode]:
    """The episodes of ``days`` with their explanation and features (deposits explain later
    access by the same user, whatever the day they were made in the window)."""
    deposits: dict[tuple[str, str], datetime] = {}
    for a in accesses:
        if a.action in ("create", "post"):
            key = (a.actor, a.patient_id)
            deposits[key] = min(deposits.get(key, a.at), a.at)
    grouped: dict[tuple[str, date], list[Access]] = defaultdict(list)
    for a in accesses:
        if a.day in days:
            grouped[(a.actor, a.day)].append(a)
    out: list[Episode] = []
    for (actor, day), todays in grouped.items():
        todays.sort(key=lambda a: a.at)
        out.extend(_user_day(actor, day, todays, evidence, history.get(actor, History()), deposits))
    return out


def _user_day(
    actor: str,
    day: date,
    todays: list[Access],
    evidence: Evidence,
    past: History,
    deposits: dict[tuple[str, str], datetime],
) -> list[Episode]:
    by_patient: dict[str, list[Access]] = defaultdict(list)
    for a in todays:
        by_patient[a.patient_id].append(a)
    explained: dict[str, str | None] = {}
    for pid, items in by_patient.items():
        why = evidence.explanation(actor, pid, items[0].at)
        deposited = deposits.get((actor, pid))
        if why is None and deposited is not None and deposited <= items[-1].at:
            why = "deposit"
        explained[pid] = why
    unexplained = sum(1 for why in explained.values() if why is None)
    emergencies = sum(1 for a in todays if a.action == "break-glass")
    exports = sum(1 for a in todays if a.action == "export")
    user_day = (
        len(by_patient) / (past.mean_records() + 1.0),
        math.log1p(unexplained),
        max(0.0, math.log1p(emergencies) - math.log1p(past.mean_emergencies())),
        sequential_share([a.patient_id for a in todays]),
        math.log1p(exports),
        math.log1p(evidence.failed_sign_ins.get((actor, day), 0)),
        1.0 if past.sources and any(a.source not in past.sources for a in todays) else 0.0,
    )
    unit = evidence.unit_of.get(actor)
    present = evidence.present.get((unit, day), set()) if unit is not None else set()
    flags = evidence.flags
    out = []
    for pid, items in by_patient.items():
        flagged = flags.get(pid, frozenset())
        episode = (
            math.log1p(len(items)),
            1.0 if pid in present else 0.0,
            1.0 if evidence.same(evidence.surname, actor, pid) else 0.0,
            1.0 if evidence.same(evidence.address, actor, pid) else 0.0,
            1.0 if evidence.same(evidence.street, actor, pid) else 0.0,
            1.0 if "vip" in flagged else 0.0,
            1.0 if "staff" in flagged else 0.0,
            sum(1 for a in items if past.rare_hour(a.hour)) / len(items),
            1.0 if any(a.emergency or a.action == "break-glass" for a in items) else 0.0,
            1.0 if any(a.action == "export" for a in items) else 0.0,
        )
        out.append(
            Episode(
                actor,
                pid,
                day,
                tuple(a.event_id for a in items),
                explained[pid],
                episode + user_day,
            )
        )
    return out
