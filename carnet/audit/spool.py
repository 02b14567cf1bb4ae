"""The audit spool: where a read's events wait, durable, while a writer holds SQLite's lock.

On SQLite one writer at a time holds the database's write lock, and a long one (a big Bundle, an
import batch) holds it for seconds. A read runs in a read transaction (a WAL snapshot) and never
waits for it; its events are appended in that transaction when the lock is free at that instant,
and otherwise go here: a small SQLite file of its own beside the database (WAL,
``synchronous=FULL``, its lock held only for one insert), committed and fsynced before the read
answers. A reader thus learns nothing before its event is durable, and never fails because of a
writer.

The audit service drains the spool into ``audit_event`` oldest first, one write transaction per
batch, and then deletes the drained rows. The spool and the database are two files, so those two
steps cannot be one transaction: each event carries its final id from the start and the drain
skips the ids the log already holds, so a crash between them neither loses nor duplicates an event.
On PostgreSQL there is no spool: readers never wait for writers there (MVCC), and appending an
event takes no lock a writer holds.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from carnet.audit.events import Event
from carnet.private_files import private_sqlite_file

SPOOL_SUFFIX = "-audit-spool"  # beside the database file, as SQLite's -wal and -shm are
# Another process (the server and a CLI command) may be inserting or deleting: a few rows at most.
SPOOL_BUSY_SECONDS = 10.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spooled_event ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE,"
    " body BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS spooled_slice ("
    " patient_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " slice BLOB NOT NULL,"
    " PRIMARY KEY (patient_id, seq))",
    "CREATE INDEX IF NOT EXISTS ix_spooled_slice_seq ON spooled_slice (seq)",
)


@dataclass(frozen=True)
class Spooled:
    """An event waiting in the spool, in spool order (``seq``)."""

    seq: int
    event: Event


class AuditSpool:
    """A durable queue of audit events in an SQLite file of its own; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def beside(cls, engine: Engine) -> AuditSpool | None:
        """The spool of an SQLite database file; None for PostgreSQL (readers never wait there)
        and for an in-memory database (one connection: nothing to wait for)."""
        if engine.dialect.name != "sqlite":
            return None
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        path = Path(database)
        return cls(path.with_name(path.name + SPOOL_SUFFIX))

    @contextmanager
    def _transaction(self, *, durable: bool) -> Iterator[sqlite3.Connection]:
        """One short transaction under this process's lock (the file's lock between processes).
        ``durable``: fsynced at commit (inserts); a delete lost in a crash is only drained again,
        which the drain skips, so deletes need not wait for the disk."""
        with self._lock:
            conn = self._connection()
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            private_sqlite_file(self.path)  # 0600, and so are its -wal and -shm
            conn = sqlite3.connect(
                self.path,
                timeout=SPOOL_BUSY_SECONDS,
                isolation_level=None,  # transactions are ours
                check_same_thread=False,  # used under self._lock only
            )
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the file (it is opened again on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- writing --------------------------------------------------------------------------------

    def add(self, events: Sequence[Event]) -> None:
        """Insert events in order; on return they are on disk."""
        if not events:
            return
        with self._transaction(durable=True) as conn:
            for event in events:
                cursor = conn.execute(
                    "INSERT INTO spooled_event (event_id, body) VALUES (?, ?)",
                    (event.event_id, event.body),
                )
                conn.executemany(
                    "INSERT INTO spooled_slice (patient_id, seq, slice) VALUES (?, ?, ?)",
                    [(pid, cursor.lastrowid, data) for pid, data in event.slices.items()],
                )

    def remove(self, seqs: Sequence[int]) -> None:
        """Delete drained events (those already in the log)."""
        if not seqs:
            return
        with self._transaction(durable=False) as conn:
            rows = [(seq,) for seq in seqs]
            conn.executemany("DELETE FROM spooled_slice WHERE seq = ?", rows)
            conn.executemany("DELETE FROM spooled_event WHERE seq = ?", rows)

    # -- reading --------------------------------------------------------------------------------

    def oldest(self, limit: int) -> list[Spooled]:
        """Up to ``limit`` events, oldest first, with their slices."""
        with self._transaction(durable=False) as conn:
            rows = conn.execute(
                "SELECT seq, event_id, body FROM spooled_event ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            if not rows:
                return []
            slices: dict[int, dict[str, bytes]] = {}
            for pid, seq, data in conn.execute(
                "SELECT patient_id, seq, slice FROM spooled_slice WHERE seq BETWEEN ? AND ?",
                (rows[0][0], rows[-1][0]),
            ):
                slices.setdefault(seq, {})[pid] = bytes(data)
        return [
            Spooled(seq, Event(event_id, bytes(body), slices.get(seq, {})))
            for seq, event_id, body in rows
        ]

    def of_patient(self, patient_id: str) -> list[tuple[str, bytes, bytes]]:
        """``(event id, body, the patient's slice)`` of the patient's waiting events, newest first."""
        with self._transaction(durable=False) as conn:
            rows = conn.execute(
                "SELECT e.event_id, e.body, s.slice FROM spooled_slice s"
                " JOIN spooled_event e ON e.seq = s.seq"
                " WHERE s.patient_id = ? ORDER BY s.seq DESC",
                (patient_id,),
            ).fetchall()
        return [(str(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    def find(self, event_id: str) -> Event | None:
        """A waiting event by id, with every slice."""
        with self._transaction(durable=False) as conn:
            row = conn.execute(
                "SELECT seq, body FROM spooled_event WHERE event_id = ?", (event_id,)
            ).fetchone()
            if row is None:
                return None
            slices = conn.execute(
                "SELECT patient_id, slice FROM spooled_slice WHERE seq = ? ORDER BY patient_id",
                (row[0],),
            ).fetchall()
        return Event(event_id, bytes(row[1]), {str(p): bytes(s) for p, s in slices})

    def count(self) -> int:
        with self._transaction(durable=False) as conn:
            return int(conn.execute("SELECT count(*) FROM spooled_event").fetchone()[0])
