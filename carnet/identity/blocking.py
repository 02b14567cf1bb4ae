"""Blocking keys: which stored identities an incoming one is scored against.

Each identity is stored with a few keys (blind-hashed in the database); an incoming record is scored
only against identities sharing at least one key. The keys are chosen so that every error identity
vigilance expects still leaves one key in common:

- ``d``: birth date + sex (catches any name error, married names);
- ``n``: phonetic birth name + birth year + sex (catches day/month errors);
- ``f``: phonetic first first-name + phonetic birth name (catches any date error);
- ``p``: birth place + phonetic first first-name + birth year (catches a married name entered as the
  birth name with a wrong day or month).

An incoming record is also looked up with its day and month swapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from carnet.identity.phonetic import phonetic_key

__all__ = ["blocking_keys", "query_keys"]


def _dates(record: Mapping[str, Any]) -> list[date]:
    born = record.get("birth_date")
    return [born] if isinstance(born, date) else []


def blocking_keys(record: Mapping[str, Any]) -> set[str]:
    """The keys an identity is stored under (plain text; the store hashes them)."""
    keys: set[str] = set()
    family = [record.get("birth_name") or "", *(record.get("used_name") or [])]
    family_keys = {phonetic_key(n) for n in family if n}
    given = record.get("given_names") or []
    first = phonetic_key(given[0]) if given else ""
    sex = record.get("sex") or ""
    for born in _dates(record):
        keys.add(f"d|{born.isoformat()}|{sex}")
        keys.update(f"n|{k}|{born.year}|{sex}" for k in family_keys)
    if first:
        keys.update(f"f|{first}|{k}" for k in family_keys)
        place = record.get("birth_place")
        if place:
            keys.update(f"p|{place}|{first}|{born.year}" for born in _dates(record))
    return keys


def query_keys(record: Mapping[str, Any]) -> set[str]:
    """The keys to look an incoming record up with: its own, and with day and month swapped."""
    keys = blocking_keys(record)
    for born in _dates(record):
        if born.day <= 12 and born.day != born.month:
            try:
                swapped = born.replace(month=born.day, day=born.month)
            except ValueError:
                continue
            keys |= blocking_keys({**record, "birth_date": swapped})
    return keys
