"""benchmarks/watch.py runs with its documented command (tiny world) and prints its figures and
the command that reproduces them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.forkserver import ForkServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a process that loads scikit-learn and builds a world: about 5 s
def test_the_watch_benchmark_runs_and_prints_its_figures(forks: ForkServer, tmp_path: Path) -> None:
    args = ["--professionals", "60", "--days", "5", "--scored-days", "2", "--seeds", "7"]
    # `python benchmarks/watch.py ...`, forked from a parent that imported carnet once.
    done = forks.run(str(ROOT / "benchmarks" / "watch.py"), args, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reproduce: .venv/bin/python benchmarks/watch.py --professionals 60" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.strip().startswith("7 "))
    assert int(row.split()[1]) > 0  # accesses
