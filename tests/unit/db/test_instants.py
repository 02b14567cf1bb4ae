"""Instants are stored one way: UTC text, fixed width, microseconds, ``Z``; it sorts as time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from carnet.db.instants import parse_stamp, stamp


def test_an_instant_is_stored_as_fixed_width_utc_text() -> None:
    moment = datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)
    assert stamp(moment) == "2026-03-02T09:00:10.000000Z"
    paris = moment.astimezone(timezone(timedelta(hours=1)))
    assert stamp(paris) == "2026-03-02T09:00:10.000000Z"  # the same instant, whatever its zone


def test_stored_instants_sort_as_time_and_read_back() -> None:
    early = datetime(2026, 3, 2, 9, 0, 10, 5, tzinfo=UTC)
    later = early + timedelta(microseconds=999_995)
    assert stamp(early) < stamp(later)
    assert len(stamp(early)) == len(stamp(later))
    assert parse_stamp(stamp(later)) == later


def test_a_stamp_without_a_moment_is_now() -> None:
    before = datetime.now(UTC)
    assert before <= parse_stamp(stamp()) <= datetime.now(UTC)
