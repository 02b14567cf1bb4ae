"""What axe cannot decide, checked in Chromium on every main page against RGAA 4.1 (the review is
written up in docs/accessibility.md): a unique title per page (8.6), headings without a skipped
level and one h1 (9.1), links with one name going to one place (6.1), language changes marked
(8.7), no positive tabindex and the skip link first, moving focus to the content (12.7, 12.8), a
visible focus on every focusable element in light and dark (10.7), and the layout at 200 % zoom
and reflowed at 320 CSS px without horizontal scrolling (10.4, 10.11), through Chromium's device
metrics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from tests.support.authn import PASSWORD
from tests.support.browser import Portal, browser_fixture, new_page, portal_fixture
from tests.support.record_pages import CARE_RPPS, build_record

# Slow: about twenty pages visited at three sizes in Chromium.
pytestmark = pytest.mark.slow

portal = portal_fixture()
browser = browser_fixture()


@dataclass
class Pages:
    """The main pages of the portal, by who may open them."""

    anonymous: list[str]
    patient: list[str]
    professional: list[str]
    cookies: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def pages(portal: Portal) -> Pages:
    services = portal.services
    world = build_record(services)
    person = services.accounts.create_person("rgaa@exemple-sante.fr", PASSWORD, world.patient_id)
    pro = services.accounts.create_professional("rgaa-pro", None, CARE_RPPS, "physician")

    def cookies(account: str) -> list[dict[str, Any]]:
        cookie, csrf = services.sessions.open(account, second_factor=True)
        return [
            {"name": SESSION_COOKIE, "value": cookie, "url": portal.base},
            {"name": CSRF_COOKIE, "value": csrf, "url": portal.base},
        ]

    pid = world.patient_id
    return Pages(
        anonymous=["/", "/connexion", "/activation", "/mot-de-passe-oublie", "/registre"],
        patient=[
            "/espace",
            "/dossier",
            f"/dossier/documents/{world.consult}",
            "/dossier/synthese",
            "/dossier/mesures/poids",
            "/dossier/mesures/tension",
            "/dossier/depot",
            "/espace/controles",
            "/espace/historique",
            "/espace/alertes",
            "/espace/representants",
            "/espace/mes-donnees",
            "/espace/recherche",
        ],
        professional=["/pro", f"/pro/patients/{pid}", f"/pro/patients/{pid}/depot"],
        cookies={"patient": cookies(person), "professional": cookies(pro)},
    )


def _visits(browser: Browser, portal: Portal, pages: Pages, **options: Any) -> Iterator[Page]:
    """Each main page, loaded in a context of its caller's (``options``: the context's)."""
    for who, paths in (
        ("anonymous", pages.anonymous),
        ("patient", pages.patient),
        ("professional", pages.professional),
    ):
        page = new_page(browser, **options)
        if who != "anonymous":
            page.context.add_cookies(pages.cookies[who])  # type: ignore[arg-type]
        try:
            for path in paths:
                answer = page.goto(portal.url(path))
                assert answer is not None and answer.status == 200, (path, answer)
                yield page
        finally:
            page.context.close()


def _path(page: Page) -> str:
    return str(page.evaluate("() => location.pathname"))


HEADINGS = """() => [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')]
    .filter(h => h.getClientRects().length > 0).map(h => Number(h.tagName[1]))"""
# A link's name, its context as RGAA 6.1 defines it (here: its table row), and where it goes.
LINKS = """() => [...document.querySelectorAll('a[href]')]
    .filter(a => a.getClientRects().length > 0)
    .map(a => [(a.getAttribute('aria-label') || a.textContent).trim().replace(/\\s+/g, ' '),
               a.closest('tr') ? a.closest('tr').textContent.trim().replace(/\\s+/g, ' ') : '',
               new URL(a.href, location.href).pathname + new URL(a.href, location.href).search])"""
LANGUAGE_LINKS = """() => [...document.querySelectorAll('a[hreflang]')]
    .map(a => [a.getAttribute('hreflang'), a.getAttribute('lang')])"""
POSITIVE_TABINDEX = """() => [...document.querySelectorAll('[tabindex]')]
    .filter(e => Number(e.getAttribute('tabindex')) > 0).map(e => e.outerHTML.slice(0, 80))"""
FOCUSABLE = """() => [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, iframe, [tabindex]')]
    .filter(e => e.tabIndex >= 0).length"""
# What each focus the keyboard moves shows, recorded by the page as the focus arrives (the
# element's computed outline with :focus-visible applied), so a Tab costs one key press and the
# record is read once per pass.
RECORD_FOCUS = """() => {
  window.__focusSeen = [];
  document.addEventListener('focusin', (event) => {
    const e = event.target, s = getComputedStyle(e);
    window.__focusSeen.push([
      e.tagName + (e.id ? '#' + e.id : '') + ' ' + (e.textContent || e.name || '').trim().slice(0, 30),
      s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2]);
  }, true);
}"""
FOCUS_SEEN = """() => { const seen = window.__focusSeen; window.__focusSeen = []; return seen; }"""


@dataclass
class Seen:
    """What one visit of a page found, for the criteria below."""

    path: str
    title: str
    lang: str
    headings: list[int]
    links: list[list[str]]
    language_links: list[list[str]]
    positive_tabindex: list[str]
    skip_link_first: bool
    skip_link_reaches_content: bool
    focus_hidden: list[str]  # "scheme: element" without a visible focus


def _focus_hidden(page: Page, scheme: str) -> list[str]:
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.evaluate(FOCUS_SEEN)  # forget the focus moves made before this pass
    for _ in range(min(int(page.evaluate(FOCUSABLE)), 40)):
        page.keyboard.press("Tab")
    hidden = []
    for what, shown in page.evaluate(FOCUS_SEEN):
        if not what.startswith(("BODY", "IFRAME")) and not shown:
            hidden.append(f"{scheme}: {what}")  # (a frame shows its own document's focus)
    return hidden


@pytest.fixture(scope="module")
def seen(portal: Portal, browser: Browser, pages: Pages) -> list[Seen]:
    """Every main page visited once, at a desktop size, keyboard included."""
    found = []
    for page in _visits(browser, portal, pages):
        path = _path(page)
        title, lang = page.title(), str(page.evaluate("() => document.documentElement.lang"))
        page.evaluate(RECORD_FOCUS)
        headings, links = page.evaluate(HEADINGS), page.evaluate(LINKS)
        language_links, tabindex = page.evaluate(LANGUAGE_LINKS), page.evaluate(POSITIVE_TABINDEX)
        page.keyboard.press("Tab")
        first = page.evaluate("() => document.activeElement.className") == "skip-link"
        page.keyboard.press("Enter")
        reaches = page.evaluate("() => document.activeElement.id") == "contenu"
        hidden = _focus_hidden(page, "light") + _focus_hidden(page, "dark")
        found.append(
            Seen(
                path, title, lang, headings, links, language_links, tabindex, first, reaches, hidden
            )
        )
    return found


def test_rgaa_8_6_each_page_has_a_unique_title(seen: list[Seen]) -> None:
    titles: dict[str, str] = {}
    for s in seen:
        assert s.title.endswith(" · Carnet") and len(s.title) > len(" · Carnet"), s
        assert s.title not in titles, f"{s.path} has the title of {titles.get(s.title)}"
        titles[s.title] = s.path


def test_rgaa_9_1_one_h1_and_headings_never_skip_a_level(seen: list[Seen]) -> None:
    for s in seen:
        assert s.headings.count(1) == 1 and s.headings[0] == 1, (s.path, s.headings)
        skips = [(a, b) for a, b in zip(s.headings, s.headings[1:], strict=False) if b > a + 1]
        assert not skips, f"{s.path}: heading levels {s.headings}"


def test_rgaa_6_1_links_with_the_same_name_and_context_go_to_the_same_place(
    seen: list[Seen],
) -> None:
    """A link's name, with its context (its table row), says where it goes: two links that
    read the same in the same context lead to the same place."""
    for s in seen:
        targets: dict[tuple[str, str], set[str]] = {}
        for name, context, target in s.links:
            assert name, f"{s.path}: a link without a name to {target}"
            targets.setdefault((name.lower(), context), set()).add(target)
        ambiguous = {n: t for n, t in targets.items() if len(t) > 1}
        assert not ambiguous, f"{s.path}: {ambiguous}"


def test_rgaa_8_3_and_8_7_page_language_and_the_other_language_marked(seen: list[Seen]) -> None:
    for s in seen:
        assert s.lang == "fr", s.path
        assert s.language_links == [["en", "en"]], (s.path, s.language_links)


def test_rgaa_12_7_skip_link_first_to_the_content_and_12_8_no_positive_tabindex(
    seen: list[Seen],
) -> None:
    for s in seen:
        assert s.positive_tabindex == [], s.path
        assert s.skip_link_first and s.skip_link_reaches_content, s.path


def test_rgaa_10_7_focus_is_visible_on_every_focusable_element_in_light_and_dark(
    seen: list[Seen],
) -> None:
    for s in seen:
        assert not s.focus_hidden, f"{s.path}: no visible focus on {s.focus_hidden}"


OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const page = document.documentElement.scrollWidth;
  // a data table may scroll inside its own box (RGAA 10.11 lets tables keep two dimensions)
  const cut = [...document.querySelectorAll('body *')].filter(e => {
    if (e.closest('.table-wrap, svg, iframe, pre')) return false;
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.right > width + 1;
  }).map(e => e.tagName + '.' + e.className).slice(0, 5);
  return [page, width, cut];
}"""


@pytest.mark.parametrize(
    ("width", "scale"),
    [(320, 1), (640, 2)],
    ids=["rgaa_10_11_reflow_at_320_px", "rgaa_10_4_zoom_200_percent"],
)
def test_rgaa_10_11_and_10_4_no_horizontal_scrolling_at_320_px_or_200_percent_zoom(
    portal: Portal, browser: Browser, pages: Pages, width: int, scale: int
) -> None:
    """Chromium's device metrics, set for the whole context (Playwright's viewport and device
    scale factor: DevTools Emulation.setDeviceMetricsOverride): a 320 CSS px window, and a 1280 px
    window at 200 % (640 CSS px at a device scale of 2)."""
    size = {"viewport": {"width": width, "height": 720}, "device_scale_factor": scale}
    for page in _visits(browser, portal, pages, **size):
        assert page.evaluate("() => [innerWidth, devicePixelRatio]") == [width, scale]
        scrolled, shown, cut = page.evaluate(OVERFLOW)
        assert scrolled <= shown and not cut, f"{_path(page)} at {width} px x{scale}: {cut}"
