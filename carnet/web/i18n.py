"""Languages of the pages: French first, English available.

Message ids are the French texts themselves, so a missing translation shows French, never an
identifier. Catalogues are the .po files under carnet/web/locale/<lang>/LC_MESSAGES/, one per area
(carnet/web/catalogue.py); they are merged and compiled in memory the first time a language is
used (no compiled .mo file is kept in the repository).
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DEFAULT_LOCALE = "fr"
LOCALES = ("fr", "en")
LANGUAGE_NAMES = {"fr": "Français", "en": "English"}  # each in its own language
LANGUAGE_COOKIE = "carnet_lang"
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"


@cache
def translations(locale: str) -> gettext.NullTranslations:
    """The compiled catalogues of ``locale`` (every area's, merged); French, the message ids
    themselves, needs none."""
    files = sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po"))
    if locale == DEFAULT_LOCALE or not files:
        return gettext.NullTranslations()
    merged = Catalog(locale=locale, domain=DOMAIN)
    for path in files:
        with path.open("rb") as po:
            catalogue = read_po(po, locale=locale)
        for message in catalogue:
            if message.id and message.string and not message.fuzzy:
                merged[message.id] = message
    compiled = BytesIO()
    write_mo(compiled, merged)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _accepted(header: str) -> list[tuple[float, str]]:
    """(quality, primary language) pairs of an Accept-Language header, best first."""
    ranked: list[tuple[float, str]] = []
    for part in header.split(",")[:20]:  # a client lists a few; bound the work anyway
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            ranked.append((quality, tag.split("-")[0].strip().lower()))
    return sorted(ranked, key=lambda pair: -pair[0])


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the one chosen with the switch, else the browser's preference among
    ours, else French."""
    if cookie in LOCALES:
        return cookie
    for quality, language in _accepted(accept_language or ""):
        if quality > 0 and language in LOCALES:
            return language
    return DEFAULT_LOCALE


def N_(message: str) -> str:  # noqa: N802 - the usual name, found by the extractor
    """Marks a text for extraction where it is defined; it is translated where it is shown."""
    return message
