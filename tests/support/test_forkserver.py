"""A forked child behaves as ``python -m <module>`` in a process of its own: its argv, its exact
environment, its output files, its exit code, and a SIGKILL ends it like any process."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.forkserver import ForkServer


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    # Nothing preloaded: these checks are about the process, not about carnet.
    with ForkServer(preload=()) as server:
        yield server


def test_a_forked_child_runs_the_module_with_its_own_argv_environment_and_output(
    forks: ForkServer, tmp_path: Path
) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    child = forks.start(
        "tests.support.forkserver_probe",
        ["one", "two"],
        env={"ONLY_THIS": "1"},
        cwd=tmp_path,
        stdout=out,
        stderr=err,
    )
    assert child.wait(timeout=60) == 3
    assert child.pid != os.getpid()
    printed = out.read_text().splitlines()
    assert printed == ["argv one two", "env ONLY_THIS", f"cwd {tmp_path}", f"pid {child.pid}"]
    assert err.read_text() == "to stderr\n"


def test_a_forked_child_killed_with_sigkill_reports_the_signal(
    forks: ForkServer, tmp_path: Path
) -> None:
    child = forks.start("tests.support.forkserver_probe", ["sleep"], env={})
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.2)
    assert child.kill() == -9
    # The server goes on forking after a killed child.
    assert forks.start("tests.support.forkserver_probe", [], env={}).wait(timeout=60) == 3


def test_a_forked_child_is_polled_without_waiting_and_ends_on_sigterm(forks: ForkServer) -> None:
    child = forks.start("tests.support.forkserver_probe", ["sleep"], env={})
    assert child.poll() is None  # still running: poll does not wait for it
    assert child.terminate(timeout=60) == -15  # SIGTERM's default action ends the sleeper
    assert child.poll() == -15
