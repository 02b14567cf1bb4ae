"""Instants: the one clock, the one text form they are stored and rendered in, and its column type.

Every instant Carnet stores is UTC text of fixed width with microseconds and ``Z``
(``2026-12-03T10:38:59.123456Z``): it sorts and compares as time on SQLite and PostgreSQL alike.
Columns declared ``Instant`` take and give aware datetimes and store that text; services that keep
the text themselves use ``stamp`` and ``parse_stamp``. FHIR dates with partial precision are not
instants (carnet/fhir/dates.py keeps their ranges).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect, String
from sqlalchemy.types import TypeDecorator

Clock = Callable[[], datetime]
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
STAMP_WIDTH = 32  # the columns' width; a stamp is 27 characters until the year 9999


def utc_now() -> datetime:
    """Now, as an aware UTC datetime (services take a ``Clock`` defaulting to this)."""
    return datetime.now(UTC)


def stamp(moment: datetime | None = None) -> str:
    """A UTC instant (now when omitted) as fixed-width text, which sorts as time."""
    return (moment or utc_now()).astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """The aware UTC datetime a stamp denotes (``ValueError`` if ``text`` is not one)."""
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


class Instant(TypeDecorator[datetime]):
    """A column holding an instant: stored as a stamp, read back as an aware UTC datetime.

    A naive datetime is taken as UTC (what the former ``DateTime`` columns held on SQLite).
    """

    impl = String(STAMP_WIDTH)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"an instant column takes a datetime, not {type(value).__name__}")
        return stamp(value if value.tzinfo else value.replace(tzinfo=UTC))

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else parse_stamp(value)
