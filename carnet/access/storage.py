"""Small helpers shared by the access services: the clock, UTC stamps and writing transactions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from hashlib import sha256

from sqlalchemy import Connection, Engine

from carnet.db.engine import writing as writing  # the access services' writes

Clock = Callable[[], datetime]
_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """A UTC instant as fixed-width text (sorts as time)."""
    return moment.astimezone(UTC).strftime(_STAMP)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, _STAMP).replace(tzinfo=UTC)


def digest(secret: str) -> str:
    """SHA-256 of a random bearer value (session id, CSRF token): what the database keeps."""
    return sha256(secret.encode()).hexdigest()


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn
