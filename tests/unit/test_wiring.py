"""One wiring place: routers get their services from carnet/dependencies.py, never from
``app.state``; settings are read from the environment at the entry points only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "carnet"


def _modules(root: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield str(path.relative_to(root.parent)), ast.parse(path.read_text(), str(path))


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
