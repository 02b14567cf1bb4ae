"""SQLite engine settings: the background WAL checkpointer copies commits and then goes away."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import event, text

from carnet.db import engine as engine_module
from carnet.db.engine import (
    CHECKPOINTERS,
    UNIT_SCOPED_INFO,
    WalCheckpointer,
    make_engine,
    writing,
)


def _wait_until_idle(checkpointer: WalCheckpointer) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and checkpointer._thread is not None:
        time.sleep(0.05)
    assert checkpointer._thread is None, "the checkpointer thread did not end"


def test_commits_are_checkpointed_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "CHECKPOINT_IDLE_SECONDS", 0.2)
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    checkpointer = CHECKPOINTERS[engine]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v BLOB)"))
    for _ in range(5):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (randomblob(100000))"))
    _wait_until_idle(checkpointer)
    assert checkpointer.checkpoints >= 1
    with engine.connect() as conn:
        # Nothing is left for a checkpoint to copy, and every row is there.
        busy, log, done = conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)")).one()
        assert (busy, log) == (0, done)
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 5
    before = checkpointer.checkpoints
    with engine.begin() as conn:  # a later commit starts a checkpointer again
        conn.execute(text("INSERT INTO t VALUES (1)"))
    _wait_until_idle(checkpointer)
    assert checkpointer.checkpoints > before
    engine.dispose()


def test_disposing_the_engine_ends_its_checkpointer_thread_at_once(tmp_path: Path) -> None:
    """No thread outlives ``services.close()`` by seconds: a process may fork right after it
    (benchmarks/ingest.py's workers), and forking is safe only with no other thread running."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    checkpointer = CHECKPOINTERS[engine]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
    thread = checkpointer._thread
    assert thread is not None and thread.is_alive()  # idle, it would last CHECKPOINT_IDLE_SECONDS
    started = time.monotonic()
    engine.dispose()
    assert not thread.is_alive() and checkpointer._thread is None
    assert time.monotonic() - started < 2
    with engine.begin() as conn:  # the engine is still usable: a commit starts a checkpointer
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert checkpointer._thread is not None
    engine.dispose()
    assert checkpointer._thread is None


def test_the_checkpointer_never_creates_a_database(tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(str(tmp_path / "missing.sqlite3"))
    checkpointer.wake()
    _wait_until_idle(checkpointer)
    assert not (tmp_path / "missing.sqlite3").exists()


def test_memory_databases_have_no_checkpointer() -> None:
    assert make_engine("sqlite://") not in CHECKPOINTERS


def test_the_sqlite_page_cache_follows_the_setting(tmp_path: Path) -> None:
    from carnet.app import build_services
    from carnet.settings import Settings

    settings = Settings.from_env({"CARNET_SQLITE_CACHE_MIB": "48"}, data_dir=str(tmp_path))
    services = build_services(settings)
    try:
        with services.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -48 * 1024
    finally:
        services.close()


def test_the_engine_factory_makes_writing_transactions_take_the_sqlite_lock_at_begin(
    tmp_path: Path,
) -> None:
    """No repository needed: every engine Carnet makes begins a writing transaction IMMEDIATE."""
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.sqlite3'}")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        with writing(engine) as conn:
            conn.execute(text("SELECT 1"))
        with engine.connect() as conn, conn.begin():
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN"]


def test_unit_scoped_connection_state_is_forgotten_when_the_connection_returns_to_the_pool(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pool.sqlite3'}")
    try:
        with engine.connect() as conn:
            conn.info[UNIT_SCOPED_INFO + "data_keys"] = {"patient:1": object()}
            conn.info["carnet_other"] = "kept"
        with engine.connect() as conn:
            assert UNIT_SCOPED_INFO + "data_keys" not in conn.info
            assert conn.info["carnet_other"] == "kept"
    finally:
        engine.dispose()
