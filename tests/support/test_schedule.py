"""Which files share a worker: every file using the worker's Spark session is in the Spark group,
so one JVM starts per run, every file using the worker's Chromium in the Chromium group, every
file importing ACRO in the ACRO group, and a group is scheduled as one unit."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.schedule import SAME_WORKER, work_unit

ROOT = Path(__file__).resolve().parents[2]


def _takes_spark(path: Path) -> bool:
    """Some function of the file (a test or a fixture) takes ``spark``, or the file defines a
    ``spark`` fixture of its own (a Spark session of its own, in the same worker's JVM)."""
    text = path.read_text()
    if "spark" not in text:  # most files: no parse needed
        return False
    tree = ast.parse(text, filename=str(path))
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    return any(
        node.name == "spark" or any(arg.arg == "spark" for arg in node.args.args)
        for node in functions
    )


def test_every_file_using_the_spark_session_is_in_the_spark_group() -> None:
    using = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("test_*.py")
        if _takes_spark(path)
    }
    assert using == set(SAME_WORKER["spark"]), (
        "list each file whose tests take `spark` in SAME_WORKER['spark'] "
        "(tests/support/schedule.py), and only those"
    )


def test_every_file_using_the_browser_is_in_the_chromium_group() -> None:
    using = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("test_*.py")
        if re.search(r"^\w+ = browser_fixture\(\)", path.read_text(), re.M)
    }
    assert using == set(SAME_WORKER["chromium"]), (
        "list each file that takes the worker's Chromium (browser_fixture) in "
        "SAME_WORKER['chromium'] (tests/support/schedule.py), and only those"
    )


def test_every_file_importing_acro_is_in_the_acro_group() -> None:
    importing = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("test_*.py")
        if re.search(
            r"""import_module\(["']acro\b|^\s*(import|from) acro\b""", path.read_text(), re.M
        )
    }
    assert importing == set(SAME_WORKER["acro"]), (
        "list each test file that imports ACRO in SAME_WORKER['acro'] "
        "(tests/support/schedule.py), and only those"
    )


def test_a_groups_files_form_one_work_unit_and_other_files_their_own() -> None:
    units = {work_unit(f"{path}::test_x[sqlite]") for path in SAME_WORKER["spark"]}
    assert units == {"spark"}
    assert {work_unit(f"{path}::test_x") for path in SAME_WORKER["chromium"]} == {"chromium"}
    assert work_unit("tests/spec/test_crud.py::test_read") == "tests/spec/test_crud.py"
