"""FHIR date, dateTime and instant values as [low, high] UTC ranges."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from carnet.fhir.dates import HIGHEST, date_range, instant, sortable


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2023", "2023-01-01T00:00:00.000000", "2023-12-31T23:59:59.999999"),
        ("2023-02", "2023-02-01T00:00:00.000000", "2023-02-28T23:59:59.999999"),
        ("2024-02", "2024-02-01T00:00:00.000000", "2024-02-29T23:59:59.999999"),
        ("2023-12", "2023-12-01T00:00:00.000000", "2023-12-31T23:59:59.999999"),
        ("2024-02-29", "2024-02-29T00:00:00.000000", "2024-02-29T23:59:59.999999"),
        ("2024-03-05T10:15Z", "2024-03-05T10:15:00.000000", "2024-03-05T10:15:59.999999"),
        ("2024-03-05T10:15:30Z", "2024-03-05T10:15:30.000000", "2024-03-05T10:15:30.999999"),
        (" 2023-07-14 ", "2023-07-14T00:00:00.000000", "2023-07-14T23:59:59.999999"),
        ("9999", "9999-01-01T00:00:00.000000", HIGHEST),
    ],
)
def test_partial_precision_sets_the_interval(value: str, low: str, high: str) -> None:
    assert date_range(value) == (low, high)


@pytest.mark.parametrize(
    ("value", "low"),
    [
        ("2024-03-05T10:15:00+01:00", "2024-03-05T09:15:00.000000"),
        ("2024-03-05T10:15:00-05:30", "2024-03-05T15:45:00.000000"),
        ("2024-03-05T00:30:00+02:00", "2024-03-04T22:30:00.000000"),  # crosses midnight
        ("2024-01-01T00:00:00+14:00", "2023-12-31T10:00:00.000000"),  # crosses a year
        ("2024-03-05T10:15:00Z", "2024-03-05T10:15:00.000000"),
        ("2024-03-05T10:15:00+00:00", "2024-03-05T10:15:00.000000"),
        ("2024-03-05T10:15:00", "2024-03-05T10:15:00.000000"),  # no zone: taken as UTC
    ],
)
def test_time_zones_are_converted_to_utc(value: str, low: str) -> None:
    rng = date_range(value)
    assert rng is not None
    assert rng[0] == low


def test_same_instant_in_two_zones_is_one_range() -> None:
    assert date_range("2024-06-01T12:00:00+02:00") == date_range("2024-06-01T10:00:00Z")


def test_fractional_seconds() -> None:
    # Only the low bound is pinned: today a fractional value is taken as an exact microsecond
    # (high == low), whereas the search page's implicit-precision rule would make ".5" span
    # [.5, .6). See the report; the low bound is right either way.
    rng = date_range("2024-03-05T10:15:00.5Z")
    assert rng is not None
    assert rng[0] == "2024-03-05T10:15:00.500000"
    assert rng[1] >= rng[0]
    rng = date_range("2024-03-05T10:15:00.123456789Z")
    assert rng is not None
    assert rng[0] == "2024-03-05T10:15:00.123456"  # truncated to microseconds


def test_leap_second_is_clamped() -> None:
    rng = date_range("2016-12-31T23:59:60Z")
    assert rng is not None
    assert rng[0] == "2016-12-31T23:59:59.000000"


@pytest.mark.parametrize(
    "value",
    [
        "2023-02-29",  # not a leap year
        "2023-02-30",
        "2023-04-31",
        "2023-13",
        "2023-00",
        "2023-01-00",
        "0000",
        "2023-1-01",
        "23-01-01",
        "2023/01/01",
        "2023-01-01T25:00:00Z",
        "2023-01-01T10:60:00Z",
        "2023-01-01T10:00:00+25:00",
        "2023-01-01T10:00:00+0100",
        "2023-01-01T10",
        "2023-01-01 10:00:00",
        "yesterday",
        "",
        "2023-02-29T10:00:00Z",
    ],
)
def test_invalid_values_are_none(value: str) -> None:
    assert date_range(value) is None


def test_ranges_sort_as_text() -> None:
    values = ["2023", "2023-06", "2023-06-15", "2023-06-15T08:00:00+02:00", "2024"]
    lows = [date_range(v)[0] for v in values]  # type: ignore[index]
    assert lows == sorted(lows)


def test_instant_and_sortable() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2024, 3, 5, 10, 15, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert instant(moment) == "2024-03-05T09:15:00.123Z"
    assert sortable(moment) == "2024-03-05T09:15:00.123456"
    assert date_range(instant(moment))[0] == "2024-03-05T09:15:00.123000"  # type: ignore[index]
    assert datetime.now(UTC).tzinfo is UTC


def test_dates_before_year_1000_keep_four_year_digits_so_they_sort_as_text() -> None:
    """strftime's %Y does not pad years below 1000 on every platform: '99-01-01' sorted after
    '1980-...' as text, so a date search or a sort put year 99 after every later date."""
    assert date_range("0099-01-01") == (
        "0099-01-01T00:00:00.000000",
        "0099-01-01T23:59:59.999999",
    )
    assert sortable(datetime(999, 12, 31, 23, 0, tzinfo=UTC)) < sortable(
        datetime(1000, 1, 1, tzinfo=UTC)
    )
