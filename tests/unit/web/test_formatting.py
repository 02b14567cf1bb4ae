"""French conventions at the edge: dates as people write them, decimal comma, Paris time."""

from __future__ import annotations

from datetime import UTC, date, datetime

from carnet.web.formatting import format_date, format_datetime, format_decimal


def test_a_day_is_written_in_words_in_french_and_english() -> None:
    assert format_date(date(2025, 3, 12)) == "12 mars 2025"
    assert format_date("2025-03-12") == "12 mars 2025"
    assert format_date(date(2025, 3, 12), "en") == "March 12, 2025"


def test_the_first_of_a_month_is_an_ordinal_in_french() -> None:
    assert format_date(date(2025, 3, 1)) == "1er mars 2025"
    assert format_date(date(2025, 3, 11)) == "11 mars 2025"
    assert format_date(date(2025, 3, 1), "en") == "March 1, 2025"


def test_a_partial_fhir_date_is_shown_at_its_own_precision() -> None:
    assert format_date("2025-03") == "mars 2025"
    assert format_date("2025") == "2025"
    assert format_date("") == ""
    assert format_date(None) == ""
    assert format_date("not a date") == "not a date"


def test_instants_are_shown_in_paris_time_winter_and_summer() -> None:
    assert format_datetime("2025-03-12T13:30:00Z") == "12 mars 2025 à 14:30"
    assert format_datetime(datetime(2025, 7, 1, 12, 0, tzinfo=UTC)) == "1er juillet 2025 à 14:00"
    assert format_datetime("2025-03-12T13:30:00Z", "en") == "March 12, 2025 at 14:30"


def test_an_instant_late_in_the_utc_day_falls_on_the_next_paris_day() -> None:
    assert format_datetime("2025-03-12T23:30:00+00:00") == "13 mars 2025 à 00:30"
    assert format_date(datetime(2025, 3, 12, 23, 30, tzinfo=UTC)) == "13 mars 2025"


def test_a_naive_instant_is_taken_as_utc() -> None:
    assert format_datetime(datetime(2025, 1, 5, 8, 0)) == "5 janvier 2025 à 09:00"


def test_decimals_use_a_comma_in_french_and_keep_their_precision() -> None:
    assert format_decimal(5.4) == "5,4"
    assert format_decimal("6.50") == "6,50"
    assert format_decimal(120) == "120"
    assert format_decimal(1234.5) == "1\u202f234,5"  # narrow no-break space between thousands
    assert format_decimal(5.4, "en") == "5.4"
    assert format_decimal(None) == ""
