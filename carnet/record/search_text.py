"""The words of a record, as the in-record search compares them: French, accent-insensitive, stemmed.

A word becomes one *term*: case folded, stemmed by the Snowball French stemmer (PyPI
``snowballstemmer``), accents removed after stemming (the stemmer reads them: "fracturée" and
"fracturé" both end in a suffix it knows), and one trailing "e" dropped so that a word typed without
its accents ("fracturee") meets the same term as the accented one. Numbers are kept whole with a
decimal point ("7,2" and "7.2" are one term). Query and items go through the same function, so a
choice made here can never make a word miss itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import cache, lru_cache
from typing import Any

# A word (letters, with inner apostrophes or hyphens split off) or a number with its decimals.
TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[^\W\d_]+")

# The commonest French function words: they carry nothing a professional searches for.
STOP_WORDS = frozenset(
    [
        "a",
        "au",
        "aux",
        "avec",
        "ce",
        "ces",
        "d",
        "dans",
        "de",
        "des",
        "du",
        "en",
        "et",
        "il",
        "elle",
        "l",
        "la",
        "le",
        "les",
        "leur",
        "n",
        "ne",
        "par",
        "pas",
        "pour",
        "qu",
        "que",
        "qui",
        "s",
        "sa",
        "se",
        "ses",
        "son",
        "sur",
        "un",
        "une",
        "y",
        "est",
        "sont",
        "ou",
    ]
)


@cache
def _stemmer() -> Any:
    """The French stemmer, made on first use: ``snowballstemmer`` imports every language's
    stemmer, a tenth of carnet's start-up that most processes never need."""
    import snowballstemmer  # type: ignore[import-untyped]  # ships no type hints

    return snowballstemmer.stemmer("french")


def fold(text: str) -> str:
    """Case folded, accents and other combining marks removed (NFKD), ligatures spelt out."""
    decomposed = unicodedata.normalize(
        "NFKD", text.casefold().replace("œ", "oe").replace("æ", "ae")
    )
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=65536)
def term(word: str) -> str:
    """The term of one token (as :data:`TOKEN` cuts them); "" for a stop word."""
    if word[0].isdigit():
        return word.replace(",", ".")
    lowered = word.casefold()
    if fold(lowered) in STOP_WORDS:
        return ""
    stem = fold(str(_stemmer().stemWord(lowered)))
    if len(stem) > 3 and stem.endswith("e"):
        stem = stem[:-1]
    return stem


def terms(text: str) -> Iterator[str]:
    """The terms of ``text`` in order, stop words left out."""
    for match in TOKEN.finditer(text):
        found = term(match.group())
        if found:
            yield found


def spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, term) of each token of ``text``, stop words included with the term ""."""
    for match in TOKEN.finditer(text):
        yield match.start(), match.end(), term(match.group())
