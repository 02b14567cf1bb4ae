"""The in-record search benchmark runs with its documented command at a tiny size and prints its
figures beside both baselines: a benchmark that no longer runs fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.forkserver import ForkServer

# Slow: the benchmark loads a record and extracts its PDFs' text (about 10 s here).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_record_search_benchmark_runs_and_prints_its_figures(
    forks: ForkServer, tmp_path: Path
) -> None:
    args = ["--resources", "120", "--documents", "5", "--runs", "5"]
    done = forks.run(str(ROOT / "benchmarks" / "record_search.py"), [*args], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "reproduce: .venv/bin/python benchmarks/record_search.py" in out
    for method in ("Carnet RecordSearch", "decrypt + substring scan", "FTS5 prebuilt"):
        row = next(line for line in out.splitlines() if method in line)
        assert float(row.split()[-2]) > 0  # its p95
