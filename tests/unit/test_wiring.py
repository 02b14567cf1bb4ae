"""One wiring place: routers get their services from carnet/dependencies.py, never from
``app.state``; settings are read from the environment at the entry points only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "carnet"


@cache
def _parsed(path: Path) -> ast.Module:
    """Each module parsed once for every check of this file (the checks only read the trees)."""
    return ast.parse(path.read_text(), str(path))


def _modules(root: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield str(path.relative_to(root.parent)), _parsed(path)


def app_state_reads(root: Path) -> list[str]:
    """``<x>.app.state`` or ``app.state`` anywhere but in the dependencies module."""
    found = []
    for name, tree in _modules(root):
        if name == "carnet/dependencies.py":
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr == "state"):
                continue
            owner = node.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "app") or (
                isinstance(owner, ast.Name) and owner.id == "app"
            ):
                found.append(f"{name}:{node.lineno}")
    return found


def test_no_router_reads_app_state() -> None:
    assert app_state_reads(PACKAGE) == []


def test_the_app_state_check_sees_a_router_reading_it(tmp_path: Path) -> None:
    router = tmp_path / "carnet" / "fhir" / "api.py"
    router.parent.mkdir(parents=True)
    router.write_text("def f(request):\n    return request.app.state.fhir\n")
    assert app_state_reads(tmp_path / "carnet") == ["carnet/fhir/api.py:2"]


def _is_entry_point(name: str) -> bool:
    """The ASGI module and the command line: they read the settings and pass them down."""
    stem = name.rsplit("/", 1)[-1]
    return name == "carnet/asgi.py" or name.startswith("carnet/cli/") or "cli" in stem


def settings_read_outside_entry_points(root: Path) -> list[str]:
    """``Settings.from_env`` and the environment read (``os.getenv``, ``os.environ.get``,
    ``os.environ[...]``, ``os.environ`` passed on) outside the entry points and carnet/settings.py.
    Setting a variable for a child process (``os.environ[k] = v``, ``setdefault``) is no read."""
    found = []
    for name, tree in _modules(root):
        may_read = _is_entry_point(name) or name == "carnet/settings.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "from_env" and not may_read:
                found.append(f"{name}:{node.lineno} Settings.from_env")
        if may_read:
            continue
        writes = {
            id(node.value)
            for node in ast.walk(tree)
            if (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store))
            or (isinstance(node, ast.Attribute) and node.attr == "setdefault")
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")):
                continue
            if id(node) not in writes:
                found.append(f"{name}:{node.lineno} os.{node.attr}")
    return sorted(found)


def test_settings_are_read_only_at_entry_points() -> None:
    assert settings_read_outside_entry_points(PACKAGE) == []


def test_the_settings_check_sees_a_service_reading_the_environment(tmp_path: Path) -> None:
    service = tmp_path / "carnet" / "authn" / "oidc.py"
    service.parent.mkdir(parents=True)
    service.write_text(
        "import os\nfrom carnet.settings import Settings\n"
        "def issuer():\n    return Settings.from_env().issuer_url\n"
        "def port():\n    return os.environ.get('CARNET_PORT'), os.getenv('X')\n"
        "def child():\n    os.environ['SPARK_LOCAL_IP'] = '127.0.0.1'\n"
    )
    assert settings_read_outside_entry_points(tmp_path / "carnet") == [
        "carnet/authn/oidc.py:4 Settings.from_env",
        "carnet/authn/oidc.py:6 os.environ",
        "carnet/authn/oidc.py:6 os.getenv",
    ]


def patches_after_construction(app_module: Path) -> list[str]:
    """In ``build_services``: attributes set or hook lists appended to on built services."""
    tree = ast.parse(app_module.read_text())
    build = next(
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "build_services"
    )
    found = []
    for node in ast.walk(build):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(target, ast.Attribute) for target in targets):
            found.append(f"{node.lineno} assignment")
        call = node.func if isinstance(node, ast.Call) else None
        if isinstance(call, ast.Attribute) and call.attr in ("append", "extend", "insert"):
            found.append(f"{node.lineno} {call.attr}")
    return found


def test_services_are_complete_when_built() -> None:
    """Each domain's build gets its hooks at construction (or registers them itself); the app
    only calls the builds in order and assembles Services."""
    assert patches_after_construction(PACKAGE / "app.py") == []
