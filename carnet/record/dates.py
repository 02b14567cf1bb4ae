"""Retention terms and the age of majority (instants are stamped by carnet.db.instants)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from carnet.db.instants import stamp as stamp  # the one way instants are stored

PARIS = ZoneInfo("Europe/Paris")
MAJORITY = 18


def add_years(moment: datetime, years: float) -> datetime:
    """``moment`` plus whole calendar years (29 February -> 28), plus any fraction in days."""
    whole = int(years)
    try:
        shifted = moment.replace(year=moment.year + whole)
    except ValueError:
        shifted = moment.replace(year=moment.year + whole, day=28)
    return shifted + timedelta(days=(years - whole) * 365.25)


def majority(birth: date) -> datetime:
    """The instant a person born on ``birth`` turns 18: midnight, Paris time (29 Feb -> 1 Mar)."""
    try:
        day = birth.replace(year=birth.year + MAJORITY)
    except ValueError:
        day = date(birth.year + MAJORITY, 3, 1)
    return paris_midnight(day)


def paris_midnight(day: date) -> datetime:
    """The start of ``day`` in Paris, as a UTC instant (dates at the edges are French dates)."""
    return datetime.combine(day, time(), PARIS).astimezone(UTC)
