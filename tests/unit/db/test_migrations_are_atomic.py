"""Migrations run in one transaction: a process killed while migrating leaves a database that the
next start migrates to the end.

On SQLite this holds only because the engine factory makes every transaction an explicit BEGIN
(carnet.db.engine.make_engine): Python's sqlite3 module otherwise commits DDL as it goes, and a
kill in the middle of a table rebuild left a database the next start could not migrate ("table
... already exists"), which the import crash test once caught.

Each migration runs in a real process forked from the session's pre-imported parent (the
``forks`` fixture, tests/support/forkserver.py) and is killed with a real SIGKILL: the measured
length, and so every kill moment, is the migration's own, not the interpreter's start-up.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect

from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade
from carnet.db.schema import metadata
from tests.support.forkserver import ForkedChild, ForkServer

pytestmark = pytest.mark.slow


def _migrate_in_a_process(forks: ForkServer, url: str) -> ForkedChild:
    """``python -m tests.support.migrate_url URL`` in a forked process of its own."""
    return forks.start("tests.support.migrate_url", [url], env=dict(os.environ))


def _time_to_migrate(forks: ForkServer, url: str) -> float:
    started = time.monotonic()
    process = _migrate_in_a_process(forks, url)
    assert process.wait(timeout=300) == 0
    return time.monotonic() - started


# Kills that must land while a migration runs, and the attempts allowed to land them: a kill
# moment drawn from one timed run lands after the end when a later run is faster (the machine's
# load changes between runs), so the test goes on until enough kills landed rather than counting
# on a fixed number of attempts.
KILLS = 5
MAX_ATTEMPTS = 40


def test_migrations_killed_midway_leave_a_database_the_next_start_migrates(
    forks: ForkServer, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    length = _time_to_migrate(forks, f"sqlite:///{tmp_path / 'timing.sqlite3'}")
    killed = attempt = 0
    while killed < KILLS and attempt < MAX_ATTEMPTS:
        url = f"sqlite:///{tmp_path / f'killed{attempt}.sqlite3'}"
        process = _migrate_in_a_process(forks, url)
        try:
            process.wait(timeout=rng.uniform(0.1, 0.9) * length)
        except subprocess.TimeoutExpired:
            # -9 unless the migration ended in the instant between the timeout and the kill
            killed += process.kill() == -signal.SIGKILL
        assert process.returncode in (0, -signal.SIGKILL)
        engine = make_engine(url)
        try:
            upgrade(engine)  # the next start
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        assert set(metadata.tables) <= tables, f"seed {seed}, attempt {attempt}"
        assert not any(name.startswith("_alembic_tmp") for name in tables), f"seed {seed}"
        attempt += 1
    assert killed >= KILLS, f"too few kills landed while migrating (seed {seed})"
