"""benchmarks/portal.py runs with its documented command at the smallest size: every page of the
demo answers, with its figures and its API baseline where the page shows health data (the record
pages of session 7's smoke test, tests/functional/web/test_portal_benchmark.py, among them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.forkserver import ForkServer

# Slow: the benchmark loads a small demo and serves every page of it.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PAGES = (
    "space",
    "record",
    "document",
    "synthesis",
    "chart bp",
    "chart weight",
    "controls",
    "history",
    "pro record",
    "pro search",
)


def test_the_portal_benchmark_measures_every_page_of_the_demo(
    forks: ForkServer, tmp_path: Path
) -> None:
    args = ["--patients", "3", "--documents", "1", "--results", "2", "--runs", "2"]
    # `python benchmarks/portal.py ...`, forked from a parent that imported carnet once.
    done = forks.run(str(ROOT / "benchmarks" / "portal.py"), args, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line[:17].strip(): line[17:].split() for line in done.stdout.splitlines()}
    for name in PAGES:
        p50, p95, api50, api95, ratio, cpu, api_cpu = rows[name]
        assert 0 < float(p50) <= float(p95) and 0 < float(api50) <= float(api95), name
        assert float(ratio) > 0 and float(cpu) >= 0 and float(api_cpu) >= 0
    assert rows["pro workspace"][2:5] == ["-", "-", "-"]  # no health data, no baseline
    assert "reproduce: .venv/bin/python benchmarks/portal.py " + " ".join(args) in done.stdout
