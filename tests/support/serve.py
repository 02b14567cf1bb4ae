"""A real `carnet serve` in a subprocess, spoken to over loopback HTTP.

For what only the real server shows (uvicorn's parsing, its logs, headers, process start-up);
everything else uses FastAPI's TestClient in process. Usage::

    with carnet_serve(tmp_path / "data", trusted_proxies="127.0.0.1") as server:
        httpx.get(f"{server.base}/fhir/metadata")
    assert "..." in server.output  # everything the server printed, once it has stopped
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx2 as httpx
import pytest

HOST = "127.0.0.1"
START_SECONDS = 60.0
STOP_SECONDS = 20.0


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


@contextmanager
def carnet_serve(
    data_dir: Path, *, port: int | None = None, **settings: str
) -> Iterator[RunningServer]:
    """Run `carnet serve` on ``data_dir`` (and ``CARNET_<NAME>`` for each keyword setting) until
    the block ends; fail the test with the server's output if it does not answer within a minute.

    The caller's own CARNET_* variables are not passed on: the test says what the server gets.
    """
    port = free_port() if port is None else port
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env |= {"CARNET_DATA_DIR": str(data_dir), "CARNET_PORT": str(port)}
    env |= {f"CARNET_{name.upper()}": value for name, value in settings.items()}
    # A file, not a pipe: a chatty server must never block on a full pipe nobody reads yet.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "carnet", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        server: RunningServer | None = None
        try:
            server = RunningServer(port, _wait_until_served(proc, log, f"http://{HOST}:{port}"))
            yield server
        finally:
            proc.terminate()
            proc.wait(timeout=STOP_SECONDS)
            if server is not None:
                server.output = _read(log)


def _wait_until_served(proc: subprocess.Popen[bytes], log: IO[bytes], base: str) -> httpx.Response:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            return httpx.get(f"{base}/fhir/metadata", timeout=2)
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"carnet serve did not start: {_read(log)[-2000:]}")
            time.sleep(0.2)


def _read(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")
