"""The identity benchmark runs with its documented command at a tiny size (the populations the INS
rule is about and the French identities, each beside Splink) and keeps its promise: no false link
on any population, whatever Splink does: a benchmark that no longer runs fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.forkserver import ForkServer

# Slow: the identity benchmark runs end to end.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_identity_benchmark_runs_and_finds_no_false_link(forks: ForkServer, tmp_path: Path) -> None:
    args = ["--people", "150", "--index-size", "150", "--per-population", "8"]
    done = forks.run(
        str(ROOT / "benchmarks" / "identity.py"), [*args, "--skip", "febrl", "batch"], cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "reproduce: .venv/bin/python benchmarks/identity.py" in out
    assert "Splink 5 on the same records" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  Carnet ")]
    assert len(rows) == 6
    for _engine, population, cases, false, *_rest in rows:
        assert int(cases) == 8, population
        assert int(false) == 0, population
