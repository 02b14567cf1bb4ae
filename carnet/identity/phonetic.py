"""A small phonetic key for French names, for blocking (a simplified "Soundex 2" / Phonex).

Names that sound alike in French get the same key: "Dupont", "Dupond" and "Du Pont" give DUPON;
"Philippe" and "Filipe" give FILI; "Gauthier" and "Gautier" give GOTI. The key is deliberately
coarse: it only decides which candidates are scored; the scoring compares the names themselves.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

__all__ = ["phonetic_key"]

# Ordered rewrites, applied to an upper-case, letters-only name.
_REWRITES: Final[tuple[tuple[str, str], ...]] = (
    (r"GU([EIY])", r"K\1"),
    (r"G([EIY])", r"J\1"),
    (r"C([EIY])", r"S\1"),
    (r"SCH", "CH"),
    (r"SH", "CH"),
    (r"(?<!S)CH", "CH"),
    (r"PH", "F"),
    (r"TH", "T"),
    (r"QU", "K"),
    (r"CK|CQ|CC|Q|C(?!H)", "K"),
    (r"GN", "NI"),
    (r"(?<!C)H", ""),
    (r"W", "V"),
    (r"Z", "S"),
    (r"Y", "I"),
    (r"EAU|AU", "O"),
    (r"OU", "U"),
    (r"AI|EI", "E"),
    (r"(AN|AM|EN|EM)(?=[^AEIOU]|$)", "AN"),
    (r"(IN|IM|AIN|EIN|UN|UM)(?=[^AEIOU]|$)", "IN"),
    (r"(ON|OM)(?=[^AEIOU]|$)", "ON"),
    (r"(?<=[AEIOU])S(?=[AEIOU])", "Z"),
    (r"(ER|EZ|ET)$", "E"),
    (r"(?<=.)[ESTXDP]+$", ""),
    (r"(?<=.)E(?=.)", ""),
)
_COMPILED: Final = tuple((re.compile(p), r) for p, r in _REWRITES)
_DOUBLES: Final = re.compile(r"(.)\1+")


@lru_cache(maxsize=262_144)  # names repeat: scoring and blocking ask for the same ones
def phonetic_key(name: str, length: int = 8) -> str:
    """The phonetic key of a (French) name, at most ``length`` characters; "" for an empty name."""
    decomposed = unicodedata.normalize("NFKD", name.upper().replace("Œ", "OE").replace("Æ", "AE"))
    text = "".join(c for c in decomposed if "A" <= c <= "Z")
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return _DOUBLES.sub(r"\1", text)[:length]
