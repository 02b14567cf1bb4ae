"""tests/support/cli.py runs a command as Typer's own ``CliRunner().invoke`` does (the oracle
here), though it builds each app's command tree once, and a run leaves nothing to the next."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from carnet.cli.main import app
from tests.support.cli import command_of, invoke

WITNESS = "CARNET_TEST_CLI_WITNESS"


def _probe() -> typer.Typer:
    """Each way a command ends: output on both streams, a prompt, exits, an exception."""
    probe = typer.Typer()

    @probe.command("talk")
    def talk() -> None:
        typer.echo(f"out {os.environ.get(WITNESS)}")
        typer.echo("err", err=True)

    @probe.command("ask")
    def ask() -> None:
        secret = typer.prompt("Secret", hide_input=True, confirmation_prompt=True)
        typer.echo(f"{len(secret)} characters")

    @probe.command("leave")
    def leave(code: int, message: bool = False) -> None:
        if message:
            sys.exit("gone")
        raise typer.Exit(code)

    @probe.command("crash")
    def crash() -> None:
        raise LookupError("p-1")

    return probe


PROBE = _probe()
CALLS = {
    "both streams": (["talk"], {WITNESS: "set"}, None),
    "prompt": (["ask"], None, "twelve chars\ntwelve chars\n"),
    "prompt mismatch": (["ask"], None, "one\nother\n"),
    "exit 0": (["leave", "0"], None, None),
    "exit 3": (["leave", "3"], None, None),
    "sys.exit text": (["leave", "0", "--message"], None, None),
    "usage error": (["leave", "not-a-number"], None, None),
    "exception": (["crash"], None, None),
    "no such command": (["nothing-by-that-name"], None, None),
}


def _seen(result: Result) -> tuple[object, ...]:
    exception = result.exception
    return (
        result.exit_code,
        result.stdout,
        result.stderr,
        result.output,
        type(exception).__name__,
        str(exception) if not isinstance(exception, SystemExit) else exception.code,
    )


@pytest.mark.parametrize(("args", "env", "given"), CALLS.values(), ids=CALLS.keys())
def test_a_command_ends_as_under_typers_runner(
    args: list[str], env: dict[str, str] | None, given: str | None
) -> None:
    expected = CliRunner().invoke(PROBE, args, env=env, input=given)
    assert _seen(invoke(args, env=env, input=given, app=PROBE)) == _seen(expected)
    assert WITNESS not in os.environ


def test_an_exception_reaches_the_test_when_not_caught() -> None:
    with pytest.raises(LookupError, match="p-1"):
        invoke(["crash"], app=PROBE, catch_exceptions=False)


def test_the_command_tree_is_built_once_per_app() -> None:
    assert command_of(app) is command_of(app)
    assert command_of(PROBE) is not command_of(app)


def test_carnets_help_and_errors_read_as_under_typers_runner() -> None:
    for args in (["--help"], ["hub", "--help"], ["no-such-command"], ["audit", "verify", "-x"]):
        assert _seen(invoke(args)) == _seen(CliRunner().invoke(app, args)), args


def test_each_run_reads_its_own_environment(tmp_path: Path) -> None:
    """The root callback reads the settings anew on every call of the one command tree."""
    base = {"CARNET_DATA_DIR": str(tmp_path / "data")}
    for jurisdiction in ("FR", "DE", "FR"):
        env = base | {"CARNET_BACKUP_JURISDICTION": jurisdiction}
        result = invoke(["sovereignty", "--json"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        backups = [
            d
            for d in json.loads(result.output)["destinations"]
            if d["setting"] == "backup_jurisdiction"
        ]
        assert [d["jurisdiction"] for d in backups] == [jurisdiction]


def test_a_command_leaves_the_process_environment_as_it_found_it(tmp_path: Path) -> None:
    """`carnet serve --strict` exports sovereignty_strict for uvicorn's workers
    (CliContext.exported): in the test process it would stay set for every later test, and every
    later command would read it (forked ones too: the fork server passes os.environ on)."""
    before = dict(os.environ)
    env = {
        "CARNET_DATA_DIR": str(tmp_path / "data"),
        "CARNET_HOSTING_JURISDICTION": "FR",
        "CARNET_BACKUP_JURISDICTION": "US",
    }
    refused = invoke(["serve", "--strict"], env=env)
    assert refused.exit_code == 1, refused.output
    assert dict(os.environ) == before
