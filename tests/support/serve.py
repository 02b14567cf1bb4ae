"""A real `carnet serve` in its own process, spoken to over loopback HTTP.

For what only the real server shows (uvicorn's parsing, its logs, headers, process start-up);
everything else uses FastAPI's TestClient in process. Usage::

    with carnet_serve(tmp_path / "data", forks=forks, trusted_proxies="127.0.0.1") as server:
        httpx.get(f"{server.base}/fhir/metadata")
    assert "..." in server.output  # everything the server printed, once it has stopped

With ``forks`` (the session's fork server, tests/support/forkserver.py) the server is forked from
a parent that has already imported carnet: the same ``python -m carnet serve``, without the
interpreter's start-up and imports (seconds of CPU). Without it, a fresh interpreter is started:
the only way in a process that has no fork server (tests/support/netns_journey.py, which runs in
a network namespace of its own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.support.forkserver import ForkServer

HOST = "127.0.0.1"
START_SECONDS = 60.0
STOP_SECONDS = 20.0
POLL_SECONDS = 0.05
# The servers here speak plain HTTP, yet every httpx client builds a TLS context and loads the CA
# bundle (~25 ms of CPU each): clients made in a loop share this one instead (``verify=``).
SHARED_TLS = ssl.create_default_context()


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    port: int
    metadata: httpx.Response  # the first answer, to GET /fhir/metadata
    output: str = field(default="")  # what the server printed: filled in once it has stopped

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass
class _Process:
    """The server's process, forked or started: how to tell it ended, and how to stop it."""

    ended: Callable[[], bool]
    stop: Callable[[], None]


@contextmanager
def carnet_serve(
    data_dir: Path, *, port: int | None = None, forks: ForkServer | None = None, **settings: str
) -> Iterator[RunningServer]:
    """Run `carnet serve` on ``data_dir`` (and ``CARNET_<NAME>`` for each keyword setting) until
    the block ends (SIGTERM: uvicorn's graceful stop); fail the test with the server's output if
    it does not answer within a minute. Forked from ``forks`` when given (module docstring).

    The caller's own CARNET_* variables are not passed on: the test says what the server gets.
    """
    port = free_port() if port is None else port
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env |= {"CARNET_DATA_DIR": str(data_dir), "CARNET_PORT": str(port)}
    env |= {f"CARNET_{name.upper()}": value for name, value in settings.items()}
    # A file, not a pipe: a chatty server must never block on a full pipe nobody reads yet.
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "server.log"
        log.touch()
        with _started(env, log, forks) as process:
            server: RunningServer | None = None
            try:
                server = RunningServer(port, _wait_until_served(process, log, port))
                yield server
            finally:
                process.stop()
                if server is not None:
                    server.output = _read(log)


@contextmanager
def _started(env: dict[str, str], log: Path, forks: ForkServer | None) -> Iterator[_Process]:
    if forks is not None:
        child = forks.start("carnet", ["serve"], env=env, stdout=log, stderr=log)

        def ended() -> bool:
            return child.poll() is not None

        def stop_child() -> None:
            child.terminate(timeout=STOP_SECONDS)

        yield _Process(ended, stop_child)
        return
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "carnet", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )

        def stop_proc() -> None:
            proc.terminate()
            proc.wait(timeout=STOP_SECONDS)

        try:
            yield _Process(lambda: proc.poll() is not None, stop_proc)
        finally:
            if proc.poll() is None:  # the block failed before stop(): never leave it running
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_until_served(process: _Process, log: Path, port: int) -> httpx.Response:
    """The first answer to GET /fhir/metadata."""

    def fail() -> None:
        pytest.fail(f"carnet serve did not start: {_read(log)[-2000:]}")

    wait_until_listening(port, ended=process.ended, fail=fail)
    return httpx.get(f"http://{HOST}:{port}/fhir/metadata", timeout=30, verify=SHARED_TLS)


def wait_until_listening(port: int, *, ended: Callable[[], bool], fail: Callable[[], None]) -> None:
    """Return once ``port`` accepts a TCP connection on loopback; ``fail()`` (which raises) if the
    server ``ended()`` first or after START_SECONDS. uvicorn listens only once the app has started:
    polling a plain connect is as good as polling a request, and cheap."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=2):
                return
        except OSError:
            if ended() or time.monotonic() > deadline:
                fail()
            time.sleep(POLL_SECONDS)


def _read(log: Path) -> str:
    return log.read_bytes().decode(errors="replace")
