"""Calendar helpers: the reference date, random days, and Paris/overseas UTC offsets."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Final

# All generated dates are strictly before this day.
REFERENCE_DATE: Final = date(2026, 11, 23)
# Health records are assumed digitised from this date; older events are not emitted.
RECORDS_START: Final = date(2005, 1, 1)

# Local UTC offsets (hours) of overseas departments, which have no daylight saving.
_OVERSEAS_OFFSETS: Final = {"971": -4, "972": -4, "973": -3, "974": 4, "976": 3}


def _last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1) if month < 12 else date(year, 12, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def paris_offset(moment: datetime) -> int:
    """UTC offset in hours of metropolitan France at a local time.

    Hand-coded rather than zoneinfo so the output never depends on the host's tz
    database.  Summer time started in 1976; until 1995 it ended in late September,
    since 1996 the EU rule ends it on the last Sunday of October.
    """
    year = moment.year
    if year < 1976:
        return 1
    start = datetime.combine(_last_sunday(year, 3), datetime.min.time()).replace(hour=2)
    end_month = 9 if year < 1996 else 10
    end = datetime.combine(_last_sunday(year, end_month), datetime.min.time()).replace(hour=3)
    return 2 if start <= moment < end else 1


def format_datetime(moment: datetime, department: str) -> str:
    offset = _OVERSEAS_OFFSETS.get(department)
    if offset is None:
        offset = paris_offset(moment)
    sign = "+" if offset >= 0 else "-"
    return f"{moment:%Y-%m-%dT%H:%M:%S}{sign}{abs(offset):02d}:00"


def random_date(rng: random.Random, start: date, end: date) -> date:
    """A uniformly random day in [start, end] (end clipped to before the reference date)."""
    end = min(end, REFERENCE_DATE - timedelta(days=1))
    if end <= start:
        return start
    return start + timedelta(days=rng.randint(0, (end - start).days))


def at_time(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute)


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year + years, day=28)


def years_between(birth: date, on: date) -> float:
    return (on - birth).days / 365.25
