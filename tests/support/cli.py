"""The `carnet` command line in process, its command tree built once per process.

Typer's ``CliRunner.invoke`` (typer/testing.py) rebuilds the Click command tree from the Typer app
on every call: ~50 ms of CPU for carnet's tree, paid by every CLI call in the tests. ``invoke``
builds it once per app and process (``command_of``) and runs it as Typer's runner does: under
``CliRunner.isolation`` (stdin from ``input``, ``env`` set then restored, stdout and stderr
captured apart and mixed in ``output``, 80-column Click help, ANSI stripped), in standalone mode,
``SystemExit`` turned into the exit code, any other exception caught unless ``catch_exceptions``
is false; and it puts back any environment variable the command set for its children.
tests/support/test_cli.py holds it to Typer's runner on the same calls.

A cached tree holds no state of a run: the root callback (carnet/cli/shell.py ``read_settings``)
reads the environment into a new Click context on each call, and the consoles write to whatever
``sys.stdout`` is when they print.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import typer
import typer.main
from typer.testing import CliRunner, Result

from carnet.cli.main import app as carnet_app

_RUNNER = CliRunner()

ExcInfo = tuple[type[BaseException], BaseException, TracebackType]


@functools.cache
def command_of(app: typer.Typer) -> Any:
    """The Click command of ``app``, built on first use and kept for the process."""
    return typer.main.get_command(app)


def invoke(
    args: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    input: str | bytes | None = None,
    catch_exceptions: bool = True,
    app: typer.Typer = carnet_app,
) -> Result:
    """Run ``carnet ARGS`` (or ``app``'s command) in process, as ``CliRunner().invoke`` would."""
    with _environment_kept():
        return _invoke(command_of(app), args, env, input, catch_exceptions)


@contextmanager
def _environment_kept() -> Iterator[None]:
    """Put ``os.environ`` back as it was after a command. Typer's runner restores only the
    variables ``env`` named, but a command may export more for its children (`carnet serve` sets
    what uvicorn's workers read, CliContext.exported): left in the test process, they would reach
    every later test and every process it forks."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in os.environ.keys() - before.keys():
            del os.environ[name]
        os.environ.update({k: v for k, v in before.items() if os.environ.get(k) != v})


def _invoke(
    command: Any,
    args: Sequence[str],
    env: Mapping[str, str | None] | None,
    input: str | bytes | None,
    catch_exceptions: bool,
) -> Result:
    """Typer 0.29's ``CliRunner.invoke`` (typer/testing.py) on a command already built."""
    exc_info: ExcInfo | None = None
    return_value: Any = None
    exception: BaseException | None = None
    exit_code = 0
    with _RUNNER.isolation(input=input, env=env) as (stdout, stderr, output):
        try:
            return_value = command.main(
                args=list(args), prog_name=_RUNNER.get_default_prog_name(command)
            )
        except SystemExit as exc:
            exc_info = _exc_info()
            code = 0 if exc.code is None else exc.code
            if code != 0:
                exception = exc
            if not isinstance(code, int):  # sys.exit("message"): printed, exit code 1
                sys.stdout.write(f"{code}\n")
                code = 1
            exit_code = code
        except Exception as exc:
            if not catch_exceptions:
                raise
            exception, exit_code, exc_info = exc, 1, _exc_info()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            captured = (stdout.getvalue(), stderr.getvalue(), output.getvalue())
    return Result(
        runner=_RUNNER,
        stdout_bytes=captured[0],
        stderr_bytes=captured[1],
        output_bytes=captured[2],
        return_value=return_value,
        exit_code=exit_code,
        exception=exception,
        exc_info=exc_info,
    )


def _exc_info() -> ExcInfo | None:
    kind, value, traceback = sys.exc_info()
    if kind is None or value is None or traceback is None:
        return None
    return kind, value, traceback
