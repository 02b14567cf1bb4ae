"""The one way Carnet stores an instant: UTC text, fixed width, microseconds and ``Z``, so that it
sorts as time on SQLite and PostgreSQL alike (FHIR's own instants are in carnet/fhir/dates.py)."""

from __future__ import annotations

from datetime import UTC, datetime

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime | None = None) -> str:
    """``moment`` (now when None) as stored: ``2026-03-02T09:00:10.000000Z``."""
    return (moment or utc_now()).astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """The aware UTC instant of a stored stamp."""
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)
