"""Children forked from the test process, for tests that kill or watch whole processes.

A forked child inherits everything the test process has imported and warmed (Carnet, uvicorn,
schemas): it starts in milliseconds where a fresh interpreter takes seconds. The child never
returns into pytest: it ends with ``os._exit``, its output in a log file. Never fork while this
process holds an SQLite connection to a store the child will write (nor the WAL checkpointer's):
open that store only in children, or after they have ended.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path


def fork_child(child: Callable[[], int], log: Path) -> int:
    """Run ``child`` in a forked process, its stdout and stderr appended to ``log``; its return
    value is the exit code (an exception: 1, with its traceback in the log). Returns its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: never back into pytest, whatever happens
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # pytest's capture holds sys.stdout and sys.stderr: the child writes to the log instead.
        sys.stdout = sys.stderr = open(fd, "w", buffering=1)  # noqa: SIM115 - until os._exit
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, force=True)
        code = child()
    except SystemExit as exit_:  # as the interpreter would: a message is printed, exit 1
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - reported in the log, as the exit code says
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)


def exit_code(pid: int, timeout: float) -> int | None:
    """The child's exit code once it ends within ``timeout`` s, else None (still running)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def kill(pid: int) -> None:
    """SIGKILL the child and reap it."""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
