"""Browser tests: Debian's Chromium driven by Playwright against a portal served on loopback.

One Chromium per worker, kept while the worker runs browser modules one after another (closed
by tests/functional/web/conftest.py when the next test is not a browser test), one served portal
per test module (module fixture), and a fresh browser context (no cookies, no storage) per
journey. Usage in a test module::

    portal = portal_fixture()          # a served app on a migrated SQLite store of its own
    browser = browser_fixture()        # the worker's Chromium

    def test_home_page_is_accessible(portal: Portal, browser: Browser) -> None:
        page = new_page(browser)
        page.goto(portal.url("/"))
        check_accessibility(page, "home")   # axe, light and dark, 0 WCAG 2.1 A/AA violation
                                            # (a failing scheme: build/screenshots/home-dark.png)

Never ``playwright install``: the browser is /usr/bin/chromium (``make system``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from carnet.app import Services, build_services, create_app
from carnet.settings import Settings
from tests.support.migrated_store import SqliteTemplate
from tests.support.serve import HOST, free_port

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "build" / "screenshots"  # the run's output folder (git-ignored)
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Only the violations are detailed (axe's resultTypes) and sent back: the passes and the
# incomplete checks are still run, but their nodes are not collected and the entries of every
# rule that passed or did not apply stay in the page (serialised, carried through Playwright's
# driver and parsed, they cost about a third of the CPU of a run), which the assertions never read.
AXE_RUN = """async (tags) => (await axe.run(document, {
    runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})).violations"""
START_SECONDS = 30.0


@dataclass
class Portal:
    """A portal served on loopback, and its services (to seed data and read the outbox)."""

    base: str
    services: Services

    def url(self, path: str) -> str:
        return self.base + path


def portal_settings(data_dir: Path, port: int, **overrides: Any) -> Settings:
    """Settings whose public addresses are the served port (cookies, Origin checks, links)."""
    base = f"http://{HOST}:{port}"
    # argon2id's smallest parameters, as tests/conftest.py's settings: the journeys create and
    # sign in dozens of accounts (the product's strong default is tests/unit/authn's to prove).
    overrides.setdefault("password_hash_profile", "test-only-weak")
    return Settings.from_env(
        {}, data_dir=str(data_dir), public_base_url=base, issuer_url=base, **overrides
    )


@contextmanager
def serve_portal(
    data_dir: Path, store: SqliteTemplate | None = None, **overrides: Any
) -> Iterator[Portal]:
    """Carnet's app served by uvicorn in a thread of this process, on a free loopback port, over
    a migrated store (``store``'s copy when given: no migration run)."""
    port = free_port()
    if store is not None:
        store.copy_into(data_dir)
    services = build_services(portal_settings(data_dir, port, **overrides), migrate=store is None)
    app = create_app(services.settings, services)
    config = uvicorn.Config(
        app, host=HOST, port=port, log_level="warning", server_header=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="portal", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the portal did not start")
            time.sleep(0.02)
        yield Portal(f"http://{HOST}:{port}", services)
    finally:
        server.should_exit = True
        thread.join(timeout=START_SECONDS)
        services.close()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium from Debian, with a fresh temporary profile, nothing phoning home."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield browser
        finally:
            browser.close()


def portal_fixture(**overrides: Any) -> Callable[..., Iterator[Portal]]:
    """A module fixture serving one portal for the module's tests."""

    @pytest.fixture(scope="module")
    def portal(
        tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
    ) -> Iterator[Portal]:
        with serve_portal(tmp_path_factory.mktemp("portal"), migrated_sqlite, **overrides) as p:
            yield p

    return portal


class SharedChromium:
    """The worker's one Chromium: launched by the first browser module, handed to the next ones
    (each journey still opens a context of its own), closed by ``close`` when the worker moves on
    to tests that are not browser tests (Playwright's loop then no longer holds the thread)."""

    def __init__(self) -> None:
        self._running: contextlib.ExitStack | None = None
        self._browser: Browser | None = None

    def get(self) -> Browser:
        if self._browser is None or not self._browser.is_connected():
            self.close()
            stack = contextlib.ExitStack()
            self._browser = stack.enter_context(chromium())
            self._running = stack
        return self._browser

    def close(self) -> None:
        running, self._running, self._browser = self._running, None, None
        if running is not None:
            running.close()


SHARED_CHROMIUM = SharedChromium()


def browser_fixture() -> Callable[..., Iterator[Browser]]:
    """A module fixture: the worker's Chromium, for the module's tests. Every context a module's
    tests opened is closed at its end, so no cookie or page outlives the module."""

    @pytest.fixture(scope="module")
    def browser() -> Iterator[Browser]:
        shared = SHARED_CHROMIUM.get()
        yield shared
        for context in shared.contexts:
            context.close()

    return browser


def new_page(browser: Browser, *, locale: str = "fr-FR", **options: Any) -> Page:
    """A page in a context of its own (no cookies shared with other journeys)."""
    context = browser.new_context(locale=locale, **options)
    context.set_default_timeout(10_000)
    return context.new_page()


@functools.cache
def _axe_script() -> str:
    if not AXE_SCRIPT.exists():
        pytest.fail(f"{AXE_SCRIPT} is missing: run `make install` (npm)")
    return AXE_SCRIPT.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A and AA violations of the page as it is now. The script is evaluated
    through the DevTools protocol, which the page's CSP does not govern."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_script())
    violations: list[dict[str, Any]] = page.evaluate(AXE_RUN, WCAG_21_AA)
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        targets = [", ".join(node["target"]) for node in v["nodes"][:5]]
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} at {targets}")
    return "\n".join(lines)


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page under build/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def every_screenshot() -> bool:
    """``CARNET_SCREENSHOTS=all``: photograph every checked page, not only the failing ones."""
    return os.environ.get("CARNET_SCREENSHOTS") == "all"


def check_accessibility(page: Page, name: str) -> None:
    """0 WCAG 2.1 A/AA violation in light and in dark. A scheme with a violation is photographed
    (build/screenshots/<name>-<scheme>.png) for a human look before the check fails; a passing
    one only with ``CARNET_SCREENSHOTS=all``: a full-page PNG costs about 0.3 CPU-s (the page
    laid out at its whole height, rasterised, encoded), so two cost more than axe's two runs."""
    # A click that submits a form returns once the next page has committed, its HTML perhaps
    # still arriving: axe checks the whole page, once loaded (at once if it is).
    page.wait_for_load_state("load")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        violations = axe_violations(page)
        if violations or every_screenshot():
            screenshot(page, f"{name}-{scheme}")
        assert not violations, f"{name} ({scheme}):\n{describe(violations)}"
    page.emulate_media(color_scheme="light")
