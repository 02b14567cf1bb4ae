"""The shape of the `carnet` command: one shell, each domain registering its own commands.

The expected tree was written from `carnet --help` (recursively) before the CLI became a package:
the restructuring changed no command name, option or order.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path
from typing import Any

import typer

import carnet
from carnet.cli.main import build_app

PACKAGE = Path(carnet.__file__).resolve().parent
ROOT = PACKAGE.parent

# (command path, its arguments and options) in the order `carnet --help` lists them.
EXPECTED_TREE: list[tuple[str, tuple[str, ...]]] = [
    ("serve", ("--host", "--port", "--workers", "--strict")),
    ("demo", ("--patients", "--serve", "--no-serve")),
    ("demo-code", ("secret",)),
    (
        "import",
        (
            "paths",
            "--show-rejected",
            "--dedupe-shared",
            "--no-dedupe-shared",
            "--restart",
            "--no-restart",
            "--batch-size",
        ),
    ),
    ("migrate", ()),
    ("screen", ("path", "--type")),  # Typer lists plain commands before groups
    ("restore", ("snapshot", "--from")),
    ("sovereignty", ("--json", "--strict")),
    ("keys", ()),
    ("keys status", ()),
    ("keys rotate", ("--pseudonyms", "--batch")),
    ("keys retire", ("version",)),
    ("keys schedule", ("project", "--every")),
    ("keys custody", ()),
    ("audit", ()),
    ("audit verify", ()),
    ("audit checkpoint", ()),
    ("audit witness", ("path",)),
    ("audit export", ("--patient", "--out")),
    ("identity", ()),
    ("identity queue", ("--state",)),
    ("identity merge", ("item", "--into")),
    ("identity unmerge", ("merge",)),
    ("identity dismiss", ("item",)),
    ("identity train", ("--random-pairs",)),
    ("identity dedupe", ("--engine", "--spark-master")),
    ("accounts", ()),
    ("accounts provision", ("path",)),
    ("accounts object", ("patient",)),
    ("accounts close", ("patient", "--reason")),
    ("accounts reopen", ("patient",)),
    ("accounts sweep", ("--outbox",)),
    ("accounts show", ("patient",)),
    ("accounts represent", ("patient", "representative", "--kind", "--until", "--end")),
    ("accounts add-person", ("login", "--patient", "--password", "--totp", "--no-totp")),
    (
        "accounts add-professional",
        ("login", "--rpps", "--profession", "--oidc-only", "--totp", "--no-totp"),
    ),
    ("accounts add-operator", ("login", "--password", "--totp", "--no-totp")),
    ("clients", ()),
    (
        "clients add",
        ("name", "--kind", "--scope", "--redirect-uri", "--jwks", "--jwks-url", "--client-id"),
    ),
    ("clients list", ()),
    ("clients remove", ("client_id",)),
    ("token", ()),
    ("token issue", ("--operator", "--scope", "--minutes")),
    ("rules", ()),
    ("rules list", ()),
    ("rules set", ("rule_id", "--effect", "--types")),
    ("hub", ()),
    ("hub grant", ("subject", "role")),
    ("hub permits", ()),
    ("hub extract-permit", ("permit", "--engine")),
    ("hub query", ("permit", "sql", "--member")),
    ("hub expire", ()),
    ("hub catalogue", ("omop",)),
    (
        "hub extract",
        ("--project", "--permit", "--out", "--tables", "--dates", "--k", "--engine", "--athena"),
    ),
    ("hub rekey", ("--project",)),
    ("backup", ("--to", "--target", "--jurisdiction", "--keep")),
    ("backup list", ("--from",)),
    ("backup drill", ("--from", "--snapshot")),
    ("watch", ()),
    ("watch scan", ("--days",)),
    ("watch alerts", ("--json", "--all")),
    ("watch show", ("alert_id",)),
    ("watch close", ("alert_id", "--reason")),
    ("watch flag", ("patient_id", "--kind")),
    ("watch unflag", ("patient_id", "--kind")),
    ("watch grant", ("account",)),
    ("watch revoke", ("account",)),
]

# Which module defines each command: the domain that owns what the command changes.
OWNERS: dict[str, str] = {
    "serve": "carnet.cli.serve",
    "demo": "carnet.demo.cli",
    "demo-code": "carnet.demo.cli",
    "import": "carnet.fhir.cli",
    "migrate": "carnet.db.cli",
    "keys": "carnet.crypto.cli",
    "audit": "carnet.audit.cli",
    "identity": "carnet.identity.cli",
    "accounts": "carnet.record.cli",
    "accounts add-person": "carnet.authn.cli",
    "accounts add-professional": "carnet.authn.cli",
    "accounts add-operator": "carnet.authn.cli",
    "clients": "carnet.authn.cli",
    "token": "carnet.authn.cli",
    "rules": "carnet.policy.cli",
    "hub": "carnet.hub.cli",
    "hub extract": "carnet.hub.omop.cli",
    "hub rekey": "carnet.hub.omop.cli",
    "screen": "carnet.screening.cli",
    "backup": "carnet.backup.cli",
    "restore": "carnet.backup.cli",
    "sovereignty": "carnet.sovereignty.cli",
    "watch": "carnet.watch.cli",
}


def _walk(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, command in group.commands.items():  # Typer keeps the order of registration
        path = (*prefix, name)
        found.append((path, command))
        if isinstance(getattr(command, "commands", None), dict):
            found.extend(_walk(command, path))
    return found


def _owner(path: tuple[str, ...]) -> str:
    for length in range(len(path), 0, -1):
        owner = OWNERS.get(" ".join(path[:length]))
        if owner:
            return owner
    raise AssertionError(f"no owner declared for {' '.join(path)}")


def _command_modules() -> list[Path]:
    """carnet/cli/*.py and every domain's cli.py (and its parts': carnet/hub/omop/cli.py)."""
    return sorted(
        {*PACKAGE.glob("cli/*.py"), *PACKAGE.glob("*/cli.py"), *PACKAGE.glob("*/*/cli.py")}
    )


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> list[tuple[ast.ImportFrom | ast.Import, bool]]:
    """Every import of a module, and whether it sits at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    return [
        (node, id(node) in top)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]


def test_every_domain_registers_its_own_commands() -> None:
    commands = _walk(typer.main.get_group(build_app()))
    tree = [
        (" ".join(path), tuple(o for p in command.params for o in (*p.opts, *p.secondary_opts)))
        for path, command in commands
    ]
    assert tree == EXPECTED_TREE
    for path, command in commands:
        if command.callback is not None:  # groups have none
            assert command.callback.__module__ == _owner(path), " ".join(path)


def test_the_command_modules_are_found() -> None:
    names = {_module_name(path) for path in _command_modules()}
    assert {"carnet.cli.shell", "carnet.cli.main", "carnet.record.cli", "carnet.authn.cli"} <= names


def test_cli_modules_import_no_private_helper() -> None:
    for path in _command_modules():
        for node, _ in _imports(path):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{_module_name(path)} imports {private} from {node.module}"


def test_domain_commands_import_the_shell_never_the_root_app() -> None:
    """A domain's commands import carnet.cli.shell at module level (no import hidden in a function
    to dodge a cycle) and never carnet.cli.main: only the root app knows every domain."""
    # The root app itself, and the package's entry-point shim for console scripts installed before
    # the package existed (carnet/cli/__init__.py: it imports the root app when called).
    exempt = {"carnet.cli.main", "carnet.cli"}
    for path in _command_modules():
        where = _module_name(path)
        if where in exempt:
            continue
        for node, at_top in _imports(path):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
            )
            for name in names:
                if name == "carnet.cli" or name.startswith("carnet.cli."):
                    assert at_top, f"{where} imports {name} inside a function"
                    assert name != "carnet.cli.main", f"{where} imports the root app"


def test_only_the_shell_reads_the_settings() -> None:
    """Settings are read once, by the root callback, and handed to each command."""
    for path in _command_modules():
        if _module_name(path) == "carnet.cli.shell":
            continue
        source = path.read_text(encoding="utf-8")
        assert "from_env" not in source, f"{_module_name(path)} reads the settings itself"
        assert "os.environ" not in source, f"{_module_name(path)} reads the environment"


def test_each_command_module_imports_on_its_own() -> None:
    """No import cycle: each module imports first, in a fresh interpreter."""
    names = [_module_name(path) for path in _command_modules()]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'carnet' or m.startswith('carnet.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_console_script_runs_the_root_app() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    module, _, function = scripts["carnet"].partition(":")
    assert getattr(import_module(module), function) is import_module("carnet.cli.main").main
