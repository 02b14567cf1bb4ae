"""The portal benchmark runs with its documented command at a tiny size and prints its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow  # a full app, a record and timed loops: several seconds
def test_portal_benchmark_runs_and_prints_each_page(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "portal.py"),
            "--documents",
            "2",
            "--results",
            "5",
            "--runs",
            "3",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for page in ("documents", "document", "synthesis", "chart"):
        assert any(line.startswith(page) for line in done.stdout.splitlines())
    assert "reproduce: .venv/bin/python benchmarks/portal.py" in done.stdout
