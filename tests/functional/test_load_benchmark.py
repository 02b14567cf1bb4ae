"""The load test (benchmarks/load.py) runs for a few seconds against a real `carnet serve`: every
kind of request answered without an error, and its figures printed (issue 16, "Load and faults";
the measured run is in docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.forkserver import ForkServer

# Slow: a server started, a population written, then a few seconds of load.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("patient read", "professional search", "deposit", "import", "metadata")


def test_load_test_runs_every_kind_without_an_error_and_reports_memory(
    forks: ForkServer, tmp_path: Path
) -> None:
    args = ["--seconds", "3", "--warmup", "1", "--clients", "2", "--patients", "2"]
    # `python benchmarks/load.py ...`, forked from a parent that imported carnet once (the
    # server it measures is its own `carnet serve` process, as before).
    done = forks.run(
        str(ROOT / "benchmarks" / "load.py"), [*args, "--results", "2"], cwd=tmp_path, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = {line[:20].strip(): line[20:].split() for line in done.stdout.splitlines()}
    for kind in KINDS:
        requests, errors, *_latencies = rows[kind]
        assert int(requests) > 0 and int(errors) == 0, (kind, done.stdout)
    assert "server RSS MiB: start" in done.stdout
    assert "reproduce: .venv/bin/python benchmarks/load.py" in done.stdout
