"""The worker's one Chromium (tests/support/browser.py) lives from the first browser test of a
run of browser modules to the last: closed here as soon as the next test to run is not one."""

from __future__ import annotations

import pytest

from tests.support.browser import SHARED_CHROMIUM


def _uses_the_browser(item: pytest.Item | None) -> bool:
    return item is not None and "browser" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the test's own teardown (its module's fixtures included): close Chromium unless the
    next test uses it too."""
    if not _uses_the_browser(nextitem):
        SHARED_CHROMIUM.close()
