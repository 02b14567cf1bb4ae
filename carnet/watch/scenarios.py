"""A seeded world of hospital and general-practice access, with injected violations, to measure
the detector (benchmarks/watch.py, tests/unit/watch/test_evaluation.py).

Background: organisations with wards and an emergency department, and general practices;
professionals on day or night shifts, five days a week, each with a few workstations; a
population in households (a household shares an address and mostly a surname; surnames follow a
long-tailed distribution, so colleagues and patients share common ones), a street per few
households, a few VIPs, and the staff themselves as patients. Stays in wards (one to six days,
one to three professionals named in each encounter), emergency visits (a third opened by
break-glass before any encounter is recorded), appointments and médecin traitant panels in
general practice. Legitimate but unexplained access is common: covering a colleague's patient in
the ward, a consult in another ward, a result read for someone no longer in one's care, a
replacement in general practice; so are legitimate exports of one record, a mistyped password,
a new workstation.

Violations, only on the days evaluated: snooping on a colleague, a celebrity, a neighbour, a
relative; a mass export; stolen credentials used at night (failed sign-ins, an unknown address, a
list of records walked in order). Names and addresses exist only as blind-index digests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from carnet.crypto.blind_index import BlindIndexer
from carnet.watch.features import LOCAL_ZONE, Access, Evidence, Window

START = date(2026, 3, 2)  # a Monday
VIOLATIONS = ("colleague", "celebrity", "neighbour", "family", "mass-export", "stolen-credentials")
_VIOLATION_WEIGHTS = (2, 1, 2, 2, 1, 1)
_NIGHT_HOURS = (20, 21, 22, 23, 0, 1, 2, 3, 4, 5)
_INDEXER = BlindIndexer(b"carnet-watch-scenarios-key-32by!")


@dataclass(frozen=True)
class Pro:
    actor: str
    org: int
    unit: str
    gp: bool
    night: bool
    off_weekdays: tuple[int, ...]
    sources: tuple[str, ...]
    patient: str  # their own record: staff are patients too


@dataclass
class World:
    """What the detector is given (accesses, evidence) and the truth it is measured against."""

    accesses: list[Access] = field(default_factory=list)
    evidence: Evidence = field(default_factory=Evidence)
    first_scored: date = START
    days: int = 0
    professionals: int = 0
    violating: set[tuple[str, str, date]] = field(default_factory=set)  # (actor, patient, day)
    incidents: list[tuple[str, date, str]] = field(default_factory=list)  # (actor, day, kind)

    @property
    def scored_days(self) -> set[date]:
        return {
            START + timedelta(days=d)
            for d in range(self.days)
            if START + timedelta(days=d) >= self.first_scored
        }


class _Builder:
    def __init__(self, seed: int, professionals: int, days: int, scored_days: int, rate: float):
        self.rng = random.Random(seed)
        self.world = World(days=days, professionals=professionals)
        self.world.first_scored = START + timedelta(days=days - scored_days)
        self.rate = rate
        self.counter = 0
        self.breakglass: dict[date, list[tuple[str, str]]] = {}  # ED visits opened in emergency
        self._population(professionals * 30)
        self._staff(professionals)

    # -- the population ----------------------------------------------------------------------

    def _population(self, size: int) -> None:
        rng, ev = self.rng, self.world.evidence
        surnames = [f"surname-{i}" for i in range(max(50, size // 15))]
        weights = [1.0 / (i + 1) ** 0.9 for i in range(len(surnames))]
        self.patients: list[str] = []
        self.household: dict[str, list[str]] = {}
        self.street_of: dict[str, list[str]] = {}
        streets = max(4, size // 10)
        while len(self.patients) < size:
            family = rng.choices(surnames, weights)[0]
            street = f"street-{rng.randrange(streets)}"
            address = f"{street}/{rng.randrange(400)}"
            members = [
                f"p{len(self.patients) + i:07d}" for i in range(rng.choice((1, 1, 2, 2, 3, 4)))
            ]
            for i, pid in enumerate(members):
                surname = (
                    family if i == 0 or rng.random() < 0.8 else rng.choices(surnames, weights)[0]
                )
                self._digests(f"patient:{pid}", surname, address, street)
                self.household[pid] = members
                self.street_of.setdefault(street, []).append(pid)
            self.patients.extend(members)
        self.patients = self.patients[:size]
        self.street_key = {pid: street for street, pids in self.street_of.items() for pid in pids}
        for pid in rng.sample(self.patients, max(1, size // 300)):
            ev.flags[pid] = frozenset({"vip"})

    def _digests(self, key: str, surname: str, address: str, street: str) -> None:
        ev = self.world.evidence
        ev.surname[key] = _INDEXER.digest("watch-surname", surname)
        ev.address[key] = _INDEXER.digest("watch-address", address)
        ev.street[key] = _INDEXER.digest("watch-street", street)

    def _staff(self, count: int) -> None:
        rng, ev = self.rng, self.world.evidence
        orgs = max(2, count // 120)
        self.pros: list[Pro] = []
        own = rng.sample(self.patients, count)
        for i in range(count):
            gp = rng.random() < 0.25
            org = rng.randrange(orgs)
            unit = (
                f"gp-{i}"
                if gp
                else (f"org{org}-ed" if rng.random() < 0.12 else f"org{org}-w{rng.randrange(8)}")
            )
            pro = Pro(
                actor=f"acct-{i:05d}",
                org=org,
                unit=unit,
                gp=gp,
                night=not gp and rng.random() < 0.2,
                off_weekdays=(5, 6) if gp else tuple(rng.sample(range(7), 2)),
                sources=tuple(
                    f"10.{org}.{rng.randrange(250)}.{rng.randrange(250)}"
                    for _ in range(rng.choice((1, 2)))
                ),
                patient=own[i],
            )
            self.pros.append(pro)
            ev.unit_of[pro.actor] = unit
            for key in ("surname", "address", "street"):
                table = getattr(ev, key)
                table[f"actor:{pro.actor}"] = table[f"patient:{pro.patient}"]
            ev.flags[pro.patient] = ev.flags.get(pro.patient, frozenset()) | {"staff"}
        self.units: dict[str, list[Pro]] = {}
        for pro in self.pros:
            self.units.setdefault(pro.unit, []).append(pro)
        self.panel: dict[str, list[str]] = {}
        for pro in self.pros:
            if pro.gp:  # a médecin traitant's panel: explained at any time
                self.panel[pro.actor] = rng.sample(self.patients, min(400, len(self.patients)))
                for pid in self.panel[pro.actor]:
                    ev.care.setdefault((pro.actor, pid), []).append(Window("medecin-traitant"))

    # -- the days --------------------------------------------------------------------------

    def _at(self, day: date, pro: Pro) -> datetime:
        rng = self.rng
        hour = rng.choice(_NIGHT_HOURS) if pro.night else rng.randrange(8, 18)
        return datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)), LOCAL_ZONE)

    def _access(
        self,
        pro: Pro,
        pid: str,
        at: datetime,
        action: str = "read",
        *,
        source: str | None = None,
        emergency: bool = False,
    ) -> None:
        self.counter += 1
        self.world.accesses.append(
            Access(
                f"e{self.counter}",
                at,
                pro.actor,
                pid,
                action,
                source or self.rng.choice(pro.sources),
                emergency,
            )
        )

    def run(self) -> World:
        census: dict[str, dict[str, date]] = {
            unit: {} for unit in self.units if not unit.startswith("gp-")
        }
        for d in range(self.world.days):
            day = START + timedelta(days=d)
            self._admit(day, census)
            for pro in self.pros:
                if day.weekday() not in pro.off_weekdays:
                    self._work(day, pro, census)
            if day >= self.world.first_scored:
                self._violations(day, census)
        return self.world

    def _admit(self, day: date, census: dict[str, dict[str, date]]) -> None:
        rng, ev = self.rng, self.world.evidence
        for unit, stays in census.items():
            for pid in [p for p, end in stays.items() if end < day]:
                del stays[pid]
            staff = self.units[unit]
            ed = unit.endswith("-ed")
            target = len(staff) * (5 if ed else 4)
            while len(stays) < target:
                pid = rng.choice(self.patients)
                end = day if ed else day + timedelta(days=rng.randrange(6))
                stays[pid] = end
                start = datetime.combine(day, time(0), LOCAL_ZONE)
                finish = datetime.combine(end, time(23, 59), LOCAL_ZONE)
                if ed and rng.random() < 0.3:
                    self.breakglass.setdefault(day, []).append((unit, pid))
                    continue
                for pro in rng.sample(staff, min(len(staff), rng.choice((1, 2, 2, 3)))):
                    ev.care.setdefault((pro.actor, pid), []).append(
                        Window("encounter", start, finish)
                    )
            ev.present[(unit, day)] = set(stays)

    def _work(self, day: date, pro: Pro, census: dict[str, dict[str, date]]) -> None:
        rng, ev = self.rng, self.world.evidence
        if rng.random() < 0.06:
            ev.failed_sign_ins[(pro.actor, day)] = rng.choice((1, 1, 1, 2, 3))
        source = f"10.{pro.org}.9.{rng.randrange(250)}" if rng.random() < 0.02 else None
        if pro.gp:
            panel = self.panel[pro.actor]
            for _ in range(rng.randrange(15, 26)):
                pid = rng.choice(panel) if rng.random() < 0.85 else rng.choice(self.patients)
                at = self._at(day, pro)
                if (pro.actor, pid) not in ev.care:
                    start = datetime.combine(day, time(0), LOCAL_ZONE)
                    ev.care[(pro.actor, pid)] = [
                        Window("appointment", start, start + timedelta(days=1))
                    ]
                for _ in range(rng.randrange(1, 4)):
                    self._access(pro, pid, at + timedelta(minutes=rng.randrange(20)), source=source)
            if rng.random() < 0.05:  # a replacement: a colleague's patient, no appointment
                self._access(pro, rng.choice(self.patients), self._at(day, pro), source=source)
            return
        stays = census[pro.unit]
        noon = datetime.combine(day, time(12), LOCAL_ZONE)
        mine = [
            pid for pid in stays if any(w.covers(noon) for w in ev.care.get((pro.actor, pid), ()))
        ]
        for pid in mine:
            for _ in range(rng.randrange(1, 5)):
                self._access(pro, pid, self._at(day, pro), source=source)
        if pro.unit.endswith("-ed"):
            for unit, pid in self.breakglass.get(day, []):
                if unit == pro.unit and rng.random() < 1.0 / max(1, len(self.units[unit]) // 3):
                    at = self._at(day, pro)
                    self._access(pro, pid, at, "break-glass", source=source, emergency=True)
                    self._access(pro, pid, at + timedelta(minutes=2), source=source, emergency=True)
        others = [pid for pid in stays if pid not in mine]
        for pid in rng.sample(others, min(len(others), rng.choice((0, 0, 1, 1, 2, 3)))):
            self._access(pro, pid, self._at(day, pro), source=source)  # covering a colleague
        if rng.random() < 0.25:  # a consult in another ward of the organisation
            wards = [
                u for u in census if u.startswith(f"org{pro.org}-") and u != pro.unit and census[u]
            ]
            if wards:
                self._access(
                    pro,
                    rng.choice(list(census[rng.choice(wards)])),
                    self._at(day, pro),
                    source=source,
                )
        if rng.random() < 0.1:  # a result read for someone no longer in one's care
            self._access(pro, rng.choice(self.patients), self._at(day, pro), source=source)
        if mine and rng.random() < 0.01:  # a record sent on transfer
            self._access(pro, rng.choice(mine), self._at(day, pro), "export", source=source)

    # -- violations --------------------------------------------------------------------------

    def _violations(self, day: date, census: dict[str, dict[str, date]]) -> None:
        rng = self.rng
        expected = self.rate * len(self.pros) / 1000.0
        count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
        working = [p for p in self.pros if day.weekday() not in p.off_weekdays]
        done = 0
        while done < count:
            pro = rng.choice(working)
            kind = rng.choices(VIOLATIONS, _VIOLATION_WEIGHTS)[0]
            targets = self._targets(kind, pro, day, census)
            if not targets:
                continue
            done += 1
            self.world.incidents.append((pro.actor, day, kind))
            for pid in targets:
                self.world.violating.add((pro.actor, pid, day))

    def _targets(
        self, kind: str, pro: Pro, day: date, census: dict[str, dict[str, date]]
    ) -> list[str]:
        rng, ev = self.rng, self.world.evidence
        present = ev.present.get((pro.unit, day), set())
        pool: list[str]
        if kind == "colleague":
            pool = [p.patient for p in self.pros if p.org == pro.org and p is not pro]
        elif kind == "celebrity":
            pool = [pid for pid, f in ev.flags.items() if "vip" in f]
        elif kind == "neighbour":
            pool = [
                pid
                for pid in self.street_of[self.street_key[pro.patient]]
                if pid not in self.household[pro.patient]
            ]
        elif kind == "family":
            pool = [pid for pid in self.household[pro.patient] if pid != pro.patient]
        elif kind == "mass-export":
            chosen = rng.sample(self.patients, rng.randrange(40, 200))
            for pid in chosen:
                self._access(pro, pid, self._at(day, pro), "export")
            return chosen
        else:  # stolen credentials, used at night from an unknown address
            ev.failed_sign_ins[(pro.actor, day)] = rng.randrange(3, 9)
            source = f"203.0.113.{rng.randrange(250)}"
            first = rng.randrange(len(self.patients) - 100)
            walked = sorted(self.patients)[first : first + rng.randrange(30, 80)]
            at = datetime.combine(day, time(rng.randrange(1, 4), rng.randrange(60)), LOCAL_ZONE)
            for i, pid in enumerate(walked):
                self._access(pro, pid, at + timedelta(seconds=40 * i), source=source)
            return walked
        pool = [pid for pid in pool if pid not in present and pid != pro.patient]
        if not pool:
            return []
        pid = rng.choice(pool)
        at = self._at(day, pro)
        for i in range(rng.randrange(1, 4)):
            self._access(pro, pid, at + timedelta(minutes=i))
        return [pid]


def generate(
    seed: int,
    *,
    professionals: int = 1000,
    days: int = 10,
    scored_days: int = 3,
    rate: float = 15.0,
) -> World:
    """A world of ``days`` days whose last ``scored_days`` carry about ``rate`` violations a day
    per 1,000 professionals."""
    return _Builder(seed, professionals, days, scored_days, rate).run()
