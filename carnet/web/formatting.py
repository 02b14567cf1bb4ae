"""French conventions at the edge: "12 mars 2025", "1er mars", decimal comma, Europe/Paris.

Instants are stored in UTC; they become Paris time only here, when shown. FHIR dates may be
partial ("2025", "2025-03"): they are shown at the precision they have.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_date
from babel.dates import format_time as babel_time
from babel.numbers import format_decimal as babel_decimal

PARIS = ZoneInfo("Europe/Paris")


def _first_of_month(text: str, day: int, locale: str) -> str:
    # French writes the first day of a month as an ordinal: "1er mars 2025".
    if locale == "fr" and day == 1 and text.startswith("1 "):
        return "1er " + text[2:]
    return text


def format_date(value: date | datetime | str | None, locale: str = "fr") -> str:
    """A day as people write it ("12 mars 2025"); a partial FHIR date at its own precision
    ("mars 2025", "2025"); an instant on its Paris day; empty for nothing."""
    if value is None or value == "":
        return ""
    day = _parse(value) if isinstance(value, str) else value
    if isinstance(day, str):
        return day
    if isinstance(day, _Month):
        return babel_date(day.first, "LLLL y", locale=locale)
    if isinstance(day, datetime):
        day = to_paris(day).date()
    return _first_of_month(babel_date(day, "long", locale=locale), day.day, locale)


def format_datetime(value: datetime | str | None, locale: str = "fr") -> str:
    """An instant in Paris time: "12 mars 2025 à 14:30" ("March 12, 2025 at 14:30")."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        parsed = _parse(value)
        if not isinstance(parsed, datetime):
            return format_date(value, locale)
        value = parsed
    local = to_paris(value)
    day = format_date(local.date(), locale)
    clock = babel_time(local.time(), "HH:mm", locale=locale)
    joiner = " à " if locale == "fr" else " at "
    return f"{day}{joiner}{clock}"


def format_decimal(value: float | int | Decimal | str | None, locale: str = "fr") -> str:
    """A number with the language's decimal mark ("5,4" in French), as precise as it came."""
    if value is None or value == "":
        return ""
    number = Decimal(str(value))
    places = max(0, -int(number.as_tuple().exponent))
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return babel_decimal(number, pattern, locale=locale)


def to_paris(value: datetime) -> datetime:
    """An instant in Paris time; a naive one is taken as UTC (how Carnet stores them)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(PARIS)


class _Month:
    def __init__(self, year: int, month: int) -> None:
        self.first = date(year, month, 1)


def _parse(text: str) -> date | datetime | _Month | str:
    """A FHIR date, dateTime or instant; the text itself when it is none of them."""
    try:
        if len(text) == 4 and text.isdigit():
            return text  # a year alone is written as is
        if len(text) == 7:
            year, month = text.split("-")
            return _Month(int(year), int(month))
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
