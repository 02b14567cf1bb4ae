"""SQLite engine settings: the background WAL checkpointer copies commits and then goes away."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from carnet.db import engine as engine_module
from carnet.db.engine import CHECKPOINTERS, WalCheckpointer, make_engine


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
