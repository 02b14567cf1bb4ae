"""French NIR (numéro d'inscription au répertoire, "numéro de sécurité sociale").

Layout of the 15 characters (1-based positions)::

    1      sex digit
    2-3    last two digits of the birth year
    4-5    birth month
    6-10   birth place: INSEE commune code (department + commune), or "99" + country code
    11-13  order number of the birth in that place and month
    14-15  check key = 97 - (first 13 characters as an integer, mod 97)

Corsican departments "2A" and "2B" are not digits; for the key computation INSEE
replaces them by 19 and 18 respectively.
"""

from __future__ import annotations

__all__ = ["InvalidNIR", "make_nir", "nir_key", "validate_nir"]

NIR_LENGTH = 15

# Sex digits: 1 and 2 are the ordinary NIR (man / woman).  3 and 4 are used for
# foreign-born people whose registration is pending, and 7 and 8 for temporary
# numbers (NIA / NTT) attributed before a definitive NIR exists.
VALID_SEX_DIGITS = frozenset("123478")

# Corsica keeps letters in the NIR; the check key is computed with these numbers.
_CORSICA_SUBSTITUTES = {"2A": "19", "2B": "18"}


class InvalidNIR(ValueError):  # noqa: N818 - the name reads as the domain term
    """Raised when a string is not a well-formed NIR."""


def _month_is_valid(month: int) -> bool:
    # 01-12 is a real month; INSEE uses 20-42 and 50-99 when the month is unknown
    # (e.g. for people born abroad with incomplete civil status records).
    return 1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99


def nir_key(body13: str) -> int:
    """Return the check key (1..97) of the first 13 characters of a NIR.

    The key is ``97 - (n mod 97)`` where ``n`` is the 13 characters read as an
    integer, after replacing the Corsican department "2A" by 19 and "2B" by 18.
    """
    body = body13.replace(" ", "").upper()
    if len(body) != 13:
        raise InvalidNIR(f"NIR body must have 13 characters, got {len(body)}")
    department = body[5:7]
    if department in _CORSICA_SUBSTITUTES:
        body = body[:5] + _CORSICA_SUBSTITUTES[department] + body[7:]
    if not body.isascii() or not body.isdigit():
        raise InvalidNIR(f"NIR body {body13!r} contains non-digit characters")
    return 97 - int(body) % 97


def validate_nir(value: str) -> str:
    """Validate a NIR and return it normalised (no spaces, upper case, 15 characters).

    Accepted sex digits are 1 (man) and 2 (woman), plus the special values 3 and 4
    (foreign-born people, registration pending) and 7 and 8 (temporary numbers).
    Accepted months are 01-12 and the INSEE "unknown month" values 20-42 and 50-99.

    Raises:
        InvalidNIR: with a message naming the first rule that fails.
    """
    nir = value.replace(" ", "").upper()
    if len(nir) != NIR_LENGTH:
        raise InvalidNIR(f"NIR must have {NIR_LENGTH} characters, got {len(nir)}")
    # Positions 6-7 may be "2A" or "2B" (Corsica); everything else must be a digit.
    digits_only = nir[:5] + _CORSICA_SUBSTITUTES.get(nir[5:7], nir[5:7]) + nir[7:]
    if not digits_only.isascii() or not digits_only.isdigit():
        bad = sorted({c for c in digits_only if not (c.isascii() and c.isdigit())})
        raise InvalidNIR(
            f"NIR must contain only digits (except 2A/2B at positions 6-7), found {''.join(bad)!r}"
        )
    if nir[0] not in VALID_SEX_DIGITS:
        raise InvalidNIR(f"sex digit is {nir[0]}, expected 1 or 2 (or 3, 4, 7, 8)")
    month = int(nir[3:5])
    if not _month_is_valid(month):
        raise InvalidNIR(f"birth month is {nir[3:5]}, expected 01-12, 20-42 or 50-99")
    actual = int(nir[13:15])
    expected = nir_key(nir[:13])
    if actual != expected:
        raise InvalidNIR(f"check key is {actual:02d}, expected {expected:02d}")
    return nir


def make_nir(sex: int, birth_year: int, birth_month: int, insee_place: str, order: int) -> str:
    """Build a valid 15-character NIR.

    Args:
        sex: sex digit (1 man, 2 woman; 3, 4, 7, 8 for the special numbers).
        birth_year: full birth year; only its last two digits are kept.
        birth_month: 1-12, or an INSEE "unknown month" value (20-42, 50-99).
        insee_place: 5-character INSEE commune code ("75056", "2A004", "97411"),
            or "99" followed by the 3-digit INSEE country code for people born abroad.
        order: order number of the birth, 1-999.

    Raises:
        InvalidNIR: if an argument is out of range.
    """
    if str(sex) not in VALID_SEX_DIGITS or not 0 <= sex <= 9:
        raise InvalidNIR(f"sex digit is {sex}, expected 1 or 2 (or 3, 4, 7, 8)")
    if birth_year < 0:
        raise InvalidNIR(f"birth year is {birth_year}, expected a positive year")
    if not _month_is_valid(birth_month):
        raise InvalidNIR(f"birth month is {birth_month}, expected 1-12, 20-42 or 50-99")
    place = insee_place.upper()
    if len(place) != 5:
        raise InvalidNIR(f"birth place {insee_place!r} must have 5 characters")
    place_digits = _CORSICA_SUBSTITUTES.get(place[:2], place[:2]) + place[2:]
    if not place_digits.isascii() or not place_digits.isdigit():
        raise InvalidNIR(f"birth place {insee_place!r} must contain only digits (or 2A/2B)")
    if not 1 <= order <= 999:
        raise InvalidNIR(f"order number is {order}, expected 1-999")
    body = f"{sex}{birth_year % 100:02d}{birth_month:02d}{place}{order:03d}"
    return f"{body}{nir_key(body):02d}"
