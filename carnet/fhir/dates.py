"""FHIR date/dateTime/instant values as [low, high] ranges in one sortable text format (UTC)."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone

from carnet.db import instants

FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
HIGHEST = "9999-12-31T23:59:59.999999"


def utc_now() -> datetime:
    """Now, to the millisecond: the precision meta.lastUpdated shows, so it finds what it shows."""
    now = instants.utc_now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def instant(moment: datetime) -> str:
    """FHIR instant text for a UTC moment (used for meta.lastUpdated)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sortable(moment: datetime) -> str:
    # isoformat is several times faster than strftime, and pads the year to four digits at any
    # year (glibc's %Y gives "99" for year 99, which sorted after "1980-..." as text).
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds")


def date_range(value: str) -> tuple[str, str] | None:
    """The [low, high] interval a FHIR date-like string denotes, or None if it is not one.

    Values without a time zone are taken as UTC; the precision given sets the width of the interval.
    """
    m = _DATE.match(value.strip())
    if not m:
        return None
    year = int(m["y"])
    try:
        if m["m"] is None:
            low = datetime(year, 1, 1, tzinfo=UTC)
            high = datetime(year + 1, 1, 1, tzinfo=UTC) if year < 9999 else None
        elif m["d"] is None:
            month = int(m["m"])
            low = datetime(year, month, 1, tzinfo=UTC)
            high = low + timedelta(days=calendar.monthrange(year, month)[1])
        elif m["H"] is None:
            low = datetime(year, int(m["m"]), int(m["d"]), tzinfo=UTC)
            high = low + timedelta(days=1)
        else:
            tz: timezone = UTC
            if m["tz"] and m["tz"] != "Z":
                sign = 1 if m["tz"][0] == "+" else -1
                hours, minutes = int(m["tz"][1:3]), int(m["tz"][4:6])
                tz = timezone(timedelta(minutes=sign * (hours * 60 + minutes)))
            second = int(m["S"] or 0)
            micro = int(((m["f"] or ".0")[1:] + "000000")[:6])
            low = datetime(
                year,
                int(m["m"]),
                int(m["d"]),
                int(m["H"]),
                int(m["M"]),
                min(second, 59),
                micro,
                tzinfo=tz,
            )
            if m["f"]:  # implicit precision: .5 covers [.5, .6)
                digits = min(len(m["f"]) - 1, 6)
                high = low + timedelta(microseconds=10 ** (6 - digits))
            elif m["S"]:
                high = low + timedelta(seconds=1)
            else:
                high = low + timedelta(minutes=1)
    except ValueError:
        return None
    low_text = sortable(low)
    high_text = HIGHEST if high is None else sortable(high - timedelta(microseconds=1))
    return low_text, high_text
