"""Engine creation with the per-backend settings Carnet relies on."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from carnet.private_files import private_sqlite_file

# Per connection, allocated only as pages are used. Index rows land at random places in large
# B-trees (keyed hashes); with SQLite's default 2 MiB cache most inserts missed it and the Synthea
# ingest spent twice as long in its inserts (33 s -> 15 s of inserts at 16 MiB). Inserting the
# corpus's 928,553 index rows alone: 37,800 rows/s at 16 MiB, 50,600 at 128 MiB, no better above.
SQLITE_CACHE_MIB = 128
# Writers checkpoint themselves only past this many WAL pages (80 MiB): a safety net, since the
# background checkpointer below keeps the WAL short. SQLite's default (1,000 pages) made every
# large commit copy its pages into the database file and fsync it before returning.
SQLITE_WRITER_AUTOCHECKPOINT = 20000
SQLITE_WAL_LIMIT = 64 * 1024 * 1024  # bytes the WAL file is truncated to after a reset
CHECKPOINT_IDLE_SECONDS = 5.0  # the checkpointer thread ends after this long without a commit
CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, WalCheckpointer] = weakref.WeakKeyDictionary()
# Execution option of a connection whose transactions write: SQLite's BEGIN IMMEDIATE (see
# _take_sqlite_write_lock_at_begin). A deferred transaction that reads, then writes after another
# writer committed, fails at once with "database is locked".
WRITE_OPTION = "carnet_write"
# Connection-info entries whose name starts with this live for one unit of work (a unit's data
# keys, see carnet.crypto.envelope): the pool drops them when the connection is checked in.
UNIT_SCOPED_INFO = "carnet_unit_"
LOCK_TIMEOUT_SECONDS = 10.0  # how long a writer waits for the lock before giving up (503)
RETRY_AFTER_SECONDS = 2  # what a 503 for a lock timeout tells the client to wait
SQLITE_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (low byte of extended codes)
POSTGRES_LOCK_NOT_AVAILABLE = "55P03"


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A reading transaction of its own (one consistent view of the database)."""
    with engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A writing transaction of its own (takes SQLite's write lock at BEGIN)."""
    with engine.connect() as raw:
        conn = raw.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a database lock that was not granted in time (SQLite busy, PostgreSQL
    lock_timeout): the request may be retried, so it answers 503, not 500."""
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF in SQLITE_BUSY_CODES) or "locked" in str(orig)
    return getattr(orig, "sqlstate", None) == POSTGRES_LOCK_NOT_AVAILABLE


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    sqlite_cache_mib: int = SQLITE_CACHE_MIB,
    lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS,
) -> Engine:
    """Create an engine for ``url``: SQLite gets WAL and foreign keys, PostgreSQL a sized pool.

    A writer waits at most ``lock_timeout_seconds`` for a lock (``is_lock_timeout`` then holds).
    """
    engine = _create(url, pool_size, sqlite_cache_mib, lock_timeout_seconds)
    _take_sqlite_write_lock_at_begin(engine)
    _forget_unit_state_at_checkin(engine)
    return engine


def _create(url: str, pool_size: int, sqlite_cache_mib: int, lock_timeout_seconds: float) -> Engine:
    lock_ms = max(1, int(lock_timeout_seconds * 1000))
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            private_sqlite_file(Path(database))  # 0600, and so are its -wal and -shm
        engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={lock_ms}")
            cursor.execute(f"PRAGMA cache_size=-{sqlite_cache_mib * 1024}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WRITER_AUTOCHECKPOINT}")
            cursor.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_LIMIT}")
            cursor.close()

        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:"):
            checkpointer = WalCheckpointer(path)
            CHECKPOINTERS[engine] = checkpointer

            @event.listens_for(engine, "commit")
            def _after_commit(_conn: Any) -> None:
                checkpointer.wake()

            @event.listens_for(engine, "engine_disposed")
            def _after_dispose(_engine: Engine) -> None:
                checkpointer.stop()

        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # An error's text (logged, or shown by a traceback) must never carry the bound values: a
        # patient id, a code, a date.
        hide_parameters=True,
        # No server-side prepared statements: psycopg prepares a statement run 5 times on a
        # connection, and PostgreSQL may then plan it once for any values (a generic plan).
        # A search's best plan depends on its values (a rare code or `category=laboratory`,
        # 40 % of Observations): the generic plan of the lab results search read every
        # laboratory entry of the index for each of the patient's rows, 100-124 ms at 292k
        # resources against 1.3 ms planned for its values. Planning each time costs far less.
        connect_args={"prepare_threshold": None, "options": f"-c lock_timeout={lock_ms}"},
    )


def _take_sqlite_write_lock_at_begin(engine: Engine) -> None:
    """SQLite: writing transactions take the write lock at BEGIN (no mid-transaction upgrade failure)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _forget_unit_state_at_checkin(engine: Engine) -> None:
    """Defence in depth: what a unit kept on its connection (key material) never outlives it,
    even when the unit did not end through its own commit or rollback."""

    @event.listens_for(engine, "checkin")
    def _forget(_dbapi_conn: Any, record: Any) -> None:
        for name in [
            n for n in record.info if isinstance(n, str) and n.startswith(UNIT_SCOPED_INFO)
        ]:
            del record.info[name]


class WalCheckpointer:
    """Copies committed WAL frames into an SQLite database file from a thread of its own.

    A PASSIVE checkpoint never blocks writers or readers, so commits return once their frames
    are in the WAL, and the copy and its fsyncs run beside them (on another core when there is
    one) instead of inside every large commit. The thread starts on a commit and ends when
    commits stop, or at once when the engine is disposed (``stop``: no thread outlives a closed
    store, so a process may fork right after); it opens the file read-write only, so it never
    creates a database.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ending: threading.Event | None = None  # set: the running thread ends now
        self.checkpoints = 0  # run so far (for tests and diagnostics)

    def wake(self) -> None:
        self._wake.set()
        with self._lock:
            if self._thread is None:
                self._ending = threading.Event()
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._ending,),
                    name="carnet-wal-checkpoint",
                    daemon=True,
                )
                self._thread.start()

    def stop(self) -> None:
        """End the running thread now and wait for it (a commit after this starts another)."""
        with self._lock:
            thread, ending = self._thread, self._ending
            if thread is None or ending is None:
                return
            ending.set()
            self._thread = None
        self._wake.set()
        thread.join()

    def _idle(self, ending: threading.Event) -> bool:
        """Whether to end the thread: stopped, or no commit for a while (decided under the lock,
        so a commit arriving meanwhile either keeps this thread or starts the next)."""
        self._wake.wait(CHECKPOINT_IDLE_SECONDS)
        with self._lock:
            if ending.is_set():  # stop() has already let a next thread start
                return True
            if self._wake.is_set():
                return False
            self._thread = None
            return True

    def _run(self, ending: threading.Event) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True)
            conn.execute("PRAGMA synchronous=NORMAL")
            while not self._idle(ending):
                self._wake.clear()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.checkpoints += 1
        except sqlite3.Error:
            # The database is gone (a removed test directory) or busy: a writer's own
            # checkpoint (the safety net) covers what this one missed.
            with self._lock:
                if not ending.is_set():  # else stop() has already let a next thread start
                    self._thread = None
        finally:
            if conn is not None:
                conn.close()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def without_waiting(conn: Connection) -> Iterator[None]:
    """SQLite: inside this block a statement that needs the write lock fails at once (busy)
    instead of waiting for it; the connection's own wait is restored after. No effect elsewhere."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver: Any = conn.connection.dbapi_connection
    previous = int(driver.execute("PRAGMA busy_timeout").fetchone()[0])
    driver.execute("PRAGMA busy_timeout=0")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA busy_timeout={previous}")


def is_writing(conn: Connection) -> bool:
    """Whether ``conn``'s transaction was begun to write (SQLite's BEGIN IMMEDIATE)."""
    return bool(conn.get_execution_options().get(WRITE_OPTION, False))
