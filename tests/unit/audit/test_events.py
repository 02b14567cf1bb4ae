"""Audit event ids: UUIDv7, ordered by creation time."""

from __future__ import annotations

import time
import uuid

from carnet.db.ids import time_ordered_id


def test_event_ids_are_uuid7_in_time_order() -> None:
    first = time_ordered_id()
    time.sleep(0.002)
    later = [time_ordered_id() for _ in range(1000)]
    for text in (first, *later):
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert abs((parsed.int >> 80) - time.time_ns() // 1_000_000) < 60_000
    assert all(first < text for text in later)  # a later millisecond sorts after
    assert len(set(later)) == len(later)
