"""Migrations run in one transaction: a process killed while migrating leaves a database that the
next start migrates to the end.

On SQLite this holds only because the engine factory makes every transaction an explicit BEGIN
(carnet.db.engine.make_engine): Python's sqlite3 module otherwise commits DDL as it goes, and a
kill in the middle of a table rebuild left a database the next start could not migrate ("table
... already exists"), which the import crash test once caught.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect

from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade
from carnet.db.schema import metadata

pytestmark = pytest.mark.slow

MIGRATE = "import sys; from carnet.db.engine import make_engine; from carnet.db.migrate import upgrade; upgrade(make_engine(sys.argv[1])); print('migrated', flush=True)"


def _migrate_in_a_process(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    return subprocess.Popen(
        [sys.executable, "-c", MIGRATE, url], env=env, stdout=subprocess.DEVNULL
    )


def _time_to_migrate(url: str) -> float:
    started = time.monotonic()
    process = _migrate_in_a_process(url)
    assert process.wait(timeout=300) == 0
    return time.monotonic() - started


def test_migrations_killed_midway_leave_a_database_the_next_start_migrates(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    length = _time_to_migrate(f"sqlite:///{tmp_path / 'timing.sqlite3'}")
    killed = 0
    for attempt in range(12):
        url = f"sqlite:///{tmp_path / f'killed{attempt}.sqlite3'}"
        process = _migrate_in_a_process(url)
        try:
            process.wait(timeout=rng.uniform(0.3, 1.0) * length)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            killed += 1
        engine = make_engine(url)
        try:
            upgrade(engine)  # the next start
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        assert set(metadata.tables) <= tables, f"seed {seed}, attempt {attempt}"
        assert not any(name.startswith("_alembic_tmp") for name in tables), f"seed {seed}"
    assert killed >= 4, f"too few kills landed while migrating (seed {seed})"
