"""Migrations run in one transaction: a process killed while migrating leaves a database that the
next start migrates to the end.

On SQLite this holds only because the engine factory makes every transaction an explicit BEGIN
(carnet.db.engine.make_engine): Python's sqlite3 module otherwise commits DDL as it goes, and a
kill in the middle of a table rebuild left a database the next start could not migrate ("table
... already exists"), which the import crash test once caught.

Each migration runs in a real process forked from the session's pre-imported parent (the
``forks`` fixture, tests/support/forkserver.py) and is killed with a real SIGKILL: the measured
length, and so every kill moment, is the migration's own, not the interpreter's start-up. Both are
in the process's CPU time, which a busy machine does not stretch as it stretches wall time, so a
moment drawn from a timed run falls as far into a later run's work.
"""

from __future__ import annotations

import os
import random
import signal
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
    """The CPU seconds of a whole migration in its own process."""
    process = _migrate_in_a_process(forks, url)
    assert process.wait(timeout=300) == 0
    assert process.cpu is not None
    return process.cpu


# Kills that must land while a migration runs, and the attempts allowed to land them: a kill
# moment drawn from one timed run can still land after the end of a later run that needs less
# CPU (noise), so the test goes on until enough kills landed rather than counting on a fixed
# number of attempts.
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
        killed += process.kill_after_cpu(rng.uniform(0.1, 0.9) * length)
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
