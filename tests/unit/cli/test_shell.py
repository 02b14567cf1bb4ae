"""What every `carnet` command shares (carnet/cli/shell.py): the settings read once at the entry
point, the one error exit, the services opened and closed around a command."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from carnet.cli.shell import CliContext, fail, open_services, read_settings, settings_of
from carnet.settings import Settings
from tests.support.cli import invoke


def _probe_app(seen: list[Settings]) -> typer.Typer:
    """A root app with the real callback and two commands that record the settings they get."""
    probe = typer.Typer()
    probe.callback()(read_settings)

    @probe.command("first")
    def first(ctx: typer.Context) -> None:
        seen.append(settings_of(ctx))

    @probe.command("broken")
    def broken() -> None:
        raise fail("no Patient/p1")

    return probe


def test_the_root_callback_reads_the_settings_for_the_command(tmp_path: Path) -> None:
    seen: list[Settings] = []
    result = invoke(["first"], env={"CARNET_DATA_DIR": str(tmp_path)}, app=_probe_app(seen))
    assert result.exit_code == 0, result.output
    assert [s.data_dir for s in seen] == [tmp_path.resolve()]


def test_the_error_exit_prints_one_line_on_stderr_and_exits_1() -> None:
    result = invoke(["broken"], app=_probe_app([]))
    assert result.exit_code == 1
    assert result.stderr == "error: no Patient/p1\n"
    assert result.stdout == ""


def test_an_invalid_setting_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    env = {"CARNET_DATA_DIR": str(tmp_path / "data"), "CARNET_DEV_IDP": "maybe"}
    result = invoke(["migrate"], env=env)
    assert result.exit_code == 1
    assert result.stderr == "error: invalid setting: setting dev_idp is true or false\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "data").exists()  # nothing opened, nothing created


def test_options_that_change_a_setting_rebuild_what_derives_from_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # setenv, not delenv: monkeypatch then restores the variables `exported` sets.
    for name in ("ISSUER_URL", "PUBLIC_BASE_URL", "BASE_URL"):
        monkeypatch.setenv(f"CARNET_{name}", "")
    monkeypatch.setenv("CARNET_HOST", "127.0.0.1")
    monkeypatch.setenv("CARNET_PORT", "8000")
    before = CliContext.from_environment()
    after = before.exported(host="127.0.0.2")
    assert before.settings.issuer_url == "http://127.0.0.1:8000"
    assert after.settings.issuer_url == "http://127.0.0.2:8000"
    # The server's workers read their settings from the environment: they see the same.
    assert Settings.from_env().issuer_url == "http://127.0.0.2:8000"


def test_open_services_closes_them_when_the_command_fails(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    with pytest.raises(typer.Exit), open_services(settings) as services:
        raise fail("refused")
    assert services.pro_login.http.is_closed  # close() ran


def test_failing_to_open_carnet_is_one_line(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory", encoding="utf-8")
    settings = Settings.from_env({}, data_dir=str(blocked / "data"))
    with pytest.raises(typer.Exit) as exit_, open_services(settings):
        pytest.fail("opened")  # pragma: no cover - the services cannot open
    assert exit_.value.exit_code == 1
