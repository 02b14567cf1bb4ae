"""Ids minted by the server: UUIDv7 (RFC 9562), time-ordered.

Rows are inserted in roughly the order their ids are minted, so every index whose key starts with
such an id (resource ids in the search-index tables, audit event ids) grows at its end instead of
taking a random page per row: a transaction Bundle of hundreds of resources touches a few pages
rather than hundreds. What the id reveals, its minting time to the millisecond, is in the
resource's ``meta.lastUpdated`` (first version) or the event's time anyway.
"""

from __future__ import annotations

import secrets
import time
import uuid


def time_ordered_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, the version, then 74 random bits."""
    rand = int.from_bytes(secrets.token_bytes(10), "big")  # 80 bits: 12 for rand_a, 62 rand_b
    value = (
        (time.time_ns() // 1_000_000 & (1 << 48) - 1) << 80
        | 0x7 << 76
        | (rand >> 68) << 64
        | 0b10 << 62
        | rand & (1 << 62) - 1
    )
    return str(uuid.UUID(int=value))
