"""A browser test asserts on what the page shows through a check that waits for it.

A click that submits a form returns once the next page's navigation has committed, while its
HTML may still be arriving. ``locator.count()`` and ``locator.is_visible()`` read the page once,
without waiting: asserted right after such a click, they see a half-parsed page on a busy
machine (CI once found no QR code on the activation page this way). ``expect(locator)`` retries
until the page shows it or the timeout ends; ``inner_text`` and ``get_attribute`` wait for their
element, and are fine."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Locator methods that read the page once, without waiting for what they look for.
READS_WITHOUT_WAITING = frozenset(
    {
        "count",
        "is_visible",
        "is_hidden",
        "is_checked",
        "is_enabled",
        "is_disabled",
        "is_editable",
        "all_inner_texts",
        "all_text_contents",
    }
)
# Calls that make a Playwright locator: a receiver built from one of these is a locator.
LOCATOR_MAKERS = frozenset({"locator", "frame_locator", "first", "last", "nth", "filter"})


def _is_locator(node: ast.expr) -> bool:
    """The expression is built by Playwright's locator calls (``page.get_by_role(...).first``)."""
    for part in ast.walk(node):
        if isinstance(part, ast.Attribute) and (
            part.attr in LOCATOR_MAKERS or part.attr.startswith("get_by_")
        ):
            return True
    return False


def reads_without_waiting(source: str, filename: str = "<test>") -> list[int]:
    """Line numbers of assertions reading a locator once (``assert loc.count() == 1``)."""
    found = []
    for statement in ast.walk(ast.parse(source, filename=filename)):
        if not isinstance(statement, ast.Assert):
            continue
        for node in ast.walk(statement.test):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in READS_WITHOUT_WAITING
                and _is_locator(node.func.value)
            ):
                found.append(node.lineno)
    return found


def test_browser_assertions_wait_for_the_page_they_check() -> None:
    offending = [
        f"{path.relative_to(ROOT).as_posix()}:{line}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if "playwright" in (text := path.read_text()) or "browser_fixture" in text
        for line in reads_without_waiting(text, str(path))
    ]
    assert offending == [], (
        "assert through expect(locator) (to_have_count, to_be_visible, ...), which waits for "
        f"the page, not a one-time read: {offending}"
    )


def test_the_check_finds_a_one_time_read_and_passes_a_waiting_one() -> None:
    one_time = "assert page.locator('.qr svg').count() == 1\n"
    chained = "assert page.get_by_role('cell', name='72').first.is_visible()\n"
    waiting = "expect(page.locator('.qr svg')).to_have_count(1)\n"
    not_a_locator = "assert spool.count() == 0\nassert page.locator('h1').inner_text() == 'x'\n"
    assert reads_without_waiting(one_time) == [1]
    assert reads_without_waiting(chained) == [1]
    assert reads_without_waiting(waiting) == []
    assert reads_without_waiting(not_a_locator) == []
