"""Languages of the pages: French first, English available, every text translated."""

from __future__ import annotations

from babel.messages.pofile import read_po

from carnet.web.catalogue import areas, extract_messages
from carnet.web.i18n import LOCALE_DIR, negotiate, translations


def test_french_is_the_default_language() -> None:
    assert negotiate(None, None) == "fr"
    assert negotiate(None, "de-DE,de;q=0.9") == "fr"
    assert negotiate("xx", "") == "fr"


def test_the_browsers_preferred_language_among_ours_is_chosen() -> None:
    assert negotiate(None, "en-GB,en;q=0.9,fr;q=0.8") == "en"
    assert negotiate(None, "de;q=1, fr;q=0.5, en;q=0.7") == "en"
    assert negotiate(None, "en;q=0, fr") == "fr"
    assert negotiate(None, "en;q=abc") == "fr"


def test_the_language_chosen_with_the_switch_wins_over_the_browser() -> None:
    assert negotiate("fr", "en-GB,en;q=0.9") == "fr"
    assert negotiate("en", "fr-FR") == "en"


def _english_ids() -> set[str]:
    """Message ids with an English text (which may equal the French: "Date", "Allergies")."""
    translated: set[str] = set()
    for path in sorted((LOCALE_DIR / "en" / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as po:
            for message in read_po(po, locale="en"):
                strings = message.string if isinstance(message.string, tuple) else (message.string,)
                if message.id and all(strings) and not message.fuzzy:
                    key = message.id[0] if isinstance(message.id, tuple) else message.id
                    translated.add(key)
    return translated


def test_every_portal_text_has_an_english_translation() -> None:
    """A text without a translation would show in French on an English page."""
    english = _english_ids()
    missing = []
    for area in areas():
        for message in extract_messages(area):
            key = message.id[0] if isinstance(message.id, tuple) else message.id
            if key and key not in english:
                missing.append(f"{area}: {key!r}")
    assert not missing, "run `python -m carnet.web.catalogue`, then translate:\n" + "\n".join(
        missing
    )


def test_english_pages_use_the_catalogue() -> None:
    assert translations("en").gettext("Accueil") == "Home"
    assert translations("fr").gettext("Accueil") == "Accueil"
