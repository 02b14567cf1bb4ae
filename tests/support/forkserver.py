"""Real processes without the interpreter's start-up: a parent that imported carnet once forks
each child a test starts, kills and waits for.

Starting ``python -m carnet ...`` costs one to two seconds of CPU before the command does anything
(the interpreter, then FastAPI, SQLAlchemy, pyarrow, ... imported), and most of a crash test's
processes are killed within a few seconds. Here a server process imports those modules once, then
for each request ``os.fork()``s a child that sets its environment, working directory, argv and
output files, and runs the module as ``python -m <module>`` would, or a script as ``python
<path.py>`` would (``runpy``, as ``__main__``).
The child is a real process with its own pid, database connections and files: SIGKILL ends it as
it would end any other, with no cleanup of any kind. The server holds no database connection, no
thread and no open store, so a child starts clean.

Usage::

    with ForkServer() as forks:
        child = forks.start("carnet", ["import", folder], env=env, cwd=root, stderr=log)
        try:
            child.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            child.kill()  # SIGKILL, then reaped by the server

The server runs one child at a time (a test kills or waits for one before starting the next).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
# Done once by the server, before any fork: a module is imported, a ``module:function`` called.
# What every carnet command imports anyway (psycopg: on its first PostgreSQL connection, 0.08 s),
# and the FHIR definitions every store parses (a second of CPU per process; read-only data, cached
# per process by ``load_definitions``).
PRELOAD = (
    "carnet.cli.main",
    "carnet.app",
    "psycopg",
    "tests.support.forkserver:load_fhir_definitions",
)


def load_fhir_definitions() -> None:
    """Parse the FHIR definitions default settings point at (cached per process): once in the
    fork server for every child, once in each test worker before it freezes its heap."""
    from carnet.fhir.definitions import load_definitions
    from carnet.settings import Settings

    load_definitions(Settings.from_env({}).definitions_dir)


class ForkedChild:
    """One forked child: its pid, its exit code and CPU time once the server has reaped it."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None
        self.cpu: float | None = None  # user + system seconds, once ended (the server's wait4)

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (negative: killed by that signal); ``subprocess.TimeoutExpired`` if the
        child still runs after ``timeout`` seconds."""
        if self.returncode is None:
            reply = self.server.read_reply(timeout, self.pid)
            self.returncode = int(reply["exit"])
            self.cpu = float(reply["cpu"])
        return self.returncode

    def cpu_time(self) -> float:
        """User + system CPU seconds the child has used so far (all of it once it has ended):
        a measure of its progress that a busier machine does not stretch, as it does wall time."""
        if self.cpu is not None:
            return self.cpu
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except FileNotFoundError:  # reaped in the meantime: its total comes with its exit code
            self.wait(timeout=60)
            assert self.cpu is not None
            return self.cpu
        # utime and stime, the 14th and 15th fields of proc_pid_stat(5), in clock ticks
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def poll(self) -> int | None:
        """The exit code if the child has ended, else None (it still runs); never waits."""
        try:
            return self.wait(timeout=0)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout: float) -> int:
        """SIGTERM the child (a server's graceful stop) and wait for it; SIGKILL it if it has not
        ended after ``timeout`` seconds."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended on its own: reported below
                os.kill(self.pid, signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """SIGKILL the child (if it still runs) and wait until the server has reaped it."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended on its own: reported below
                os.kill(self.pid, signal.SIGKILL)
        return self.wait(timeout=60)

    def kill_after_cpu(self, seconds: float) -> bool:
        """SIGKILL the child once it has used ``seconds`` of CPU; False if it ended before.
        CPU time, not wall time: a busier machine stretches a run by the clock, not in CPU, so a
        moment drawn from one run's CPU time falls as far into another run's work."""
        while self.poll() is None:
            if self.cpu_time() >= seconds:
                # -9 unless the child ended in the instant between the check and the kill
                return self.kill() == -signal.SIGKILL
            time.sleep(0.005)  # CPU time is counted in 10 ms ticks
        return False


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ForkServer:
    """A pre-imported Python process that forks the children a test asks for (module docstring)."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkserver", *preload],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.buffer = b""
        self.current: ForkedChild | None = None
        ready = self.read_reply(timeout=300, pid=None)
        assert ready == {"ready": True}, ready

    def start(
        self,
        target: str,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: Path = REPO_ROOT,
        stdout: Path | None = None,
        stderr: Path | None = None,
    ) -> ForkedChild:
        """Fork a child that runs ``python -m target *args`` (``python target *args`` when target
        is a .py file) with exactly ``env`` as its environment; its output is appended to
        ``stdout``/``stderr`` (None: discarded)."""
        assert self.current is None or self.current.returncode is not None, "one child at a time"
        request = {
            "target": target,
            "args": [str(a) for a in args],
            "env": env,
            "cwd": str(cwd),
            "stdout": str(stdout) if stdout else os.devnull,
            "stderr": str(stderr) if stderr else os.devnull,
        }
        pipe = self.process.stdin
        assert pipe is not None
        pipe.write(json.dumps(request).encode() + b"\n")
        pipe.flush()
        started = self.read_reply(timeout=60, pid=None)
        self.current = ForkedChild(self, int(started["pid"]))
        return self.current

    def run(
        self,
        target: str,
        args: list[str],
        *,
        cwd: Path,
        timeout: float = 600,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """As ``subprocess.run([python, (-m) target, *args], cwd=cwd, capture_output=True,
        text=True)`` with this process's environment (``env`` set over it); the output passes
        through files in cwd."""
        out, err = cwd / ".forked-stdout", cwd / ".forked-stderr"
        for path in (out, err):
            path.unlink(missing_ok=True)
        environment = {**os.environ, **(env or {})}
        child = self.start(target, args, env=environment, cwd=cwd, stdout=out, stderr=err)
        try:
            returncode = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
        texts = [path.read_text(errors="replace") if path.exists() else "" for path in (out, err)]
        return subprocess.CompletedProcess([target, *args], returncode, *texts)

    def read_reply(self, timeout: float | None, pid: int | None) -> dict[str, Any]:
        """The server's next line; ``subprocess.TimeoutExpired`` if none came in time."""
        out = self.process.stdout
        assert out is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            readable, _, _ = select.select([out.fileno()], [], [], left)
            if not readable:
                raise subprocess.TimeoutExpired(f"forked child {pid}", timeout or 0.0)
            chunk = os.read(out.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"the fork server ended (exit {self.process.wait()})")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        if self.current is not None and self.current.returncode is None:
            self.current.kill()
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- the server's side ---------------------------------------------------------------------------


def _run_child(request: dict[str, Any]) -> None:
    """In the forked child: become ``python (-m) target args`` and never return."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        import tempfile

        tempfile.tempdir = None  # found again from this environment's TMPDIR, as a new process
        os.chdir(request["cwd"])
        target: str = request["target"]
        sys.argv = [target, *request["args"]]
        import runpy

        if target.endswith(".py"):
            sys.path.insert(0, str(Path(target).resolve().parent))  # as `python path.py` does
            runpy.run_path(target, run_name="__main__")
        else:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int | None):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported as `python -m` would, then exit 1
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # the child is ending: nothing left to tell
                stream.flush()
        os._exit(code)


def _serve(preload: list[str]) -> None:
    import gc
    import importlib

    for step in preload:
        module, _, function = step.partition(":")
        imported = importlib.import_module(module)
        if function:
            getattr(imported, function)()
    # The preloaded modules and definitions outlive every child: frozen, the children's
    # collections do not walk them (and do not write to the pages they share with this parent).
    gc.freeze()
    requests: IO[bytes] = sys.stdin.buffer
    replies: IO[bytes] = sys.stdout.buffer

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message).encode() + b"\n")
        replies.flush()

    reply({"ready": True})
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_child(request)
        reply({"pid": pid})
        _, status, usage = os.wait4(pid, 0)
        cpu = usage.ru_utime + usage.ru_stime
        reply({"pid": pid, "exit": os.waitstatus_to_exitcode(status), "cpu": cpu})


if __name__ == "__main__":
    _serve(sys.argv[1:])
