"""Small helpers shared by the access services: the clock, UTC stamps and writing transactions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from hashlib import sha256

from sqlalchemy import Connection, Engine

from carnet.db.engine import writing as writing  # the access services' writes
from carnet.db.instants import parse_stamp as parse_stamp  # the one way instants are stored
from carnet.db.instants import stamp as stamp
from carnet.db.instants import utc_now as utc_now

Clock = Callable[[], datetime]


def digest(secret: str) -> str:
    """SHA-256 of a random bearer value (session id, CSRF token): what the database keeps."""
    return sha256(secret.encode()).hexdigest()


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn
