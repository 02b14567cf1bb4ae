"""The documentation keeps up with the code: settings table and `carnet` commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from carnet.cli.main import app
from carnet.settings_table import PROJECT_ROOT, SETTINGS_TABLE
from tests.support.cli import command_of

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTINGS_DOC = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\|\s*`(?P<name>[a-z0-9_]+)`\s*\|\s*(?P<default>.*?)\s*\|\s*(?P<help>.*?)\s*\|$")


def _doc_rows() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in SETTINGS_DOC.splitlines():
        m = ROW.match(line.strip())
        if m:
            rows[m["name"]] = (m["default"], m["help"])
    return rows


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        if isinstance(getattr(command, "commands", None), dict):
            if command.invoke_without_command:  # a group that is a command too (`carnet backup`)
                found.append((*prefix, name))
            found.extend(_commands(command, (*prefix, name)))
        else:
            found.append((*prefix, name))
    return found


# The process's one command tree (tests/support/cli.py): every worker imports this module to
# collect it, and its CLI tests then run on the same tree.
COMMANDS = _commands(command_of(app))


def test_the_settings_table_is_parsed() -> None:
    assert len(_doc_rows()) >= 5


@pytest.mark.parametrize("setting", SETTINGS_TABLE, ids=lambda s: s.name)
def test_every_setting_is_documented(setting) -> None:  # type: ignore[no-untyped-def]
    rows = _doc_rows()
    assert setting.name in rows, f"{setting.name} missing from docs/settings.md"
    default, help_text = rows[setting.name]
    assert help_text == setting.help
    expected = setting.default.replace(str(PROJECT_ROOT), "<project>")
    assert default == (f"`{expected}`" if expected else "(empty)")


def test_no_stale_setting_in_docs() -> None:
    assert set(_doc_rows()) == {s.name for s in SETTINGS_TABLE}


def test_env_variable_convention_is_documented() -> None:
    assert "CARNET_<NAME>" in SETTINGS_DOC


def test_commands_are_discovered() -> None:
    assert ("import",) in COMMANDS
    assert ("keys", "status") in COMMANDS
    assert ("keys",) not in COMMANDS  # a group, listed through its sub-commands


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_is_in_the_readme(command: tuple[str, ...]) -> None:
    words = " ".join(command)
    assert re.search(rf"`carnet {re.escape(words)}(?:[ `])", README), (
        f"`carnet {words}` is not documented in README.md"
    )


def test_readme_lists_no_unknown_command() -> None:
    documented = set(re.findall(r"^\| `carnet ([a-z]+(?: [a-z][a-z-]*)?)", README, re.M))
    known = {" ".join(c) for c in COMMANDS}
    for entry in documented:
        assert entry in known or entry.split()[0] in known, entry
