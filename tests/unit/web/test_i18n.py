"""Languages of the pages: French first, English available, every text translated."""

from __future__ import annotations

from carnet.web.catalogue import areas, extract_messages
from carnet.web.i18n import negotiate, translations


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


def test_every_portal_text_has_an_english_translation() -> None:
    """A text without a translation would show in French on an English page."""
    english = translations("en")
    missing = []
    for area in areas():
        for message in extract_messages(area):
            if not message.id:
                continue
            if isinstance(message.id, tuple):
                singular, plural = message.id[0], message.id[1]
                translated = english.ngettext(singular, plural, 1) != singular
            else:
                translated = english.gettext(message.id) != message.id
            if not translated:
                missing.append(f"{area}: {message.id!r}")
    assert not missing, "run `python -m carnet.web.catalogue`, then translate:\n" + "\n".join(
        missing
    )
