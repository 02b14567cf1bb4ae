"""Tests for the French NIR rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carnet.identity.nir import InvalidNIR, make_nir, nir_key, validate_nir

# Worked examples, checked by hand:
#
# Man born July 1985 in Paris (75056), order 123 -> body 1 85 07 75056 123.
#   97 x 19 080 155 217 = 1 850 775 056 049, so 1 850 775 056 123 mod 97 = 74
#   and the key is 97 - 74 = 23.
PARIS_1985 = "185077505612323"
# Woman born February 1969 in Marseille (13055), order 042 -> body 2690213055042.
#   97 x 27 734 155 206 = 2 690 213 054 982, remainder 60, key 97 - 60 = 37.
MARSEILLE_1969 = "269021305504237"
# Woman born May 1992 in Ajaccio (2A004), order 017: "2A" counts as 19, so the
# integer is 2 920 519 004 017 = 97 x 30 108 443 340 + 37, key 97 - 37 = 60.
AJACCIO_1992 = "292052A00401760"
# Man born November 1975 in Bastia (2B033), order 031: "2B" counts as 18, so the
# integer is 1 751 118 033 031 = 97 x 18 052 763 227 + 12, key 97 - 12 = 85.
BASTIA_1975 = "175112B03303185"
# Man born August 1969 in Morocco (99 + country code 350), order 045:
#   1 690 899 350 045 = 97 x 17 431 952 062 + 31, key 66.
MOROCCO_1969 = "169089935004566"


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("1850775056123", 23),
        ("2690213055042", 37),
        ("292052A004017", 60),
        ("175112B033031", 85),
        ("1690899350045", 66),
    ],
)
def test_nir_key_matches_hand_computation(body: str, key: int) -> None:
    assert nir_key(body) == key


def test_nir_key_accepts_lower_case_corsica() -> None:
    assert nir_key("292052a004017") == 60


def test_nir_key_rejects_bad_body() -> None:
    with pytest.raises(InvalidNIR, match="13 characters"):
        nir_key("123")
    with pytest.raises(InvalidNIR, match="non-digit"):
        nir_key("18507750X6123")


@pytest.mark.parametrize(
    "nir", [PARIS_1985, MARSEILLE_1969, AJACCIO_1992, BASTIA_1975, MOROCCO_1969]
)
def test_validate_known_examples(nir: str) -> None:
    assert validate_nir(nir) == nir


def test_validate_normalises_spaces_and_case() -> None:
    assert validate_nir("2 92 05 2a 004 017 60") == AJACCIO_1992
    assert validate_nir(" 1 85 07 75 056 123 23 ") == PARIS_1985


def test_make_nir_matches_hand_examples() -> None:
    assert make_nir(1, 1985, 7, "75056", 123) == PARIS_1985
    assert make_nir(2, 1969, 2, "13055", 42) == MARSEILLE_1969
    assert make_nir(2, 1992, 5, "2A004", 17) == AJACCIO_1992
    assert make_nir(1, 1975, 11, "2b033", 31) == BASTIA_1975
    assert make_nir(1, 1969, 8, "99350", 45) == MOROCCO_1969


def test_special_sex_digits_and_months_are_accepted() -> None:
    for sex in (3, 4, 7, 8):
        assert validate_nir(make_nir(sex, 2001, 1, "75056", 1))[0] == str(sex)
    for month in (20, 42, 50, 99):
        assert validate_nir(make_nir(1, 1950, month, "99350", 1))[3:5] == f"{month:02d}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("18507750561232", "must have 15 characters, got 14"),
        ("1850775056123234", "must have 15 characters, got 16"),
        ("", "must have 15 characters, got 0"),
        ("18507750561X323", "only digits"),
        ("1850775A5612323", "only digits"),  # a letter outside positions 6-7
        ("185072C05612323", "only digits"),  # 2C is not a Corsican department
        ("2920512A0401760", "only digits"),  # 2A at the wrong place
        ("585077505612323", "sex digit is 5"),
        ("085077505612323", "sex digit is 0"),
        ("185007505612323", "birth month is 00"),
        ("185137505612323", "birth month is 13"),
        ("185197505612323", "birth month is 19"),
        ("185437505612323", "birth month is 43"),
        ("185497505612323", "birth month is 49"),
        ("185077505612342", "check key is 42, expected 23"),
        ("185077505612300", "check key is 00, expected 23"),
    ],
)
def test_validate_error_paths(value: str, message: str) -> None:
    with pytest.raises(InvalidNIR, match=message):
        validate_nir(value)


def test_invalid_nir_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="check key"):
        validate_nir("185077505612324")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 1985, 7, "75056", 1), "sex digit is 5"),
        ((1, -3, 7, "75056", 1), "birth year"),
        ((1, 1985, 0, "75056", 1), "birth month is 0"),
        ((1, 1985, 13, "75056", 1), "birth month is 13"),
        ((1, 1985, 7, "7505", 1), "5 characters"),
        ((1, 1985, 7, "75056", 0), "order number is 0"),
        ((1, 1985, 7, "75056", 1000), "order number is 1000"),
        ((1, 1985, 7, "7X056", 1), "only digits"),
        ((1, 1985, 7, "2C056", 1), "only digits"),
    ],
)
def test_make_nir_rejects_bad_arguments(args: tuple[int, int, int, str, int], message: str) -> None:
    with pytest.raises(InvalidNIR, match=message):
        make_nir(*args)


_places = st.one_of(
    st.from_regex(r"\A(0[1-9]|[1-8][0-9]|9[0-5])[0-9]{3}\Z"),
    st.from_regex(r"\A2[AB][0-9]{3}\Z"),
    st.from_regex(r"\A97[1-6][0-9]{2}\Z"),
    st.from_regex(r"\A99[0-9]{3}\Z"),
)
_months = st.one_of(st.integers(1, 12), st.integers(20, 42), st.integers(50, 99))


@given(
    sex=st.sampled_from([1, 2, 3, 4, 7, 8]),
    year=st.integers(1890, 2026),
    month=_months,
    place=_places,
    order=st.integers(1, 999),
    data=st.data(),
)
def test_make_nir_always_validates_and_single_digit_changes_fail(
    sex: int, year: int, month: int, place: str, order: int, data: st.DataObject
) -> None:
    nir = make_nir(sex, year, month, place, order)
    assert len(nir) == 15
    assert validate_nir(nir) == nir
    assert nir_key(nir[:13]) == int(nir[13:])

    digit_positions = [i for i, c in enumerate(nir) if c.isdigit()]
    position = data.draw(st.sampled_from(digit_positions), label="position")
    replacement = data.draw(
        st.sampled_from([d for d in "0123456789" if d != nir[position]]), label="digit"
    )
    altered = nir[:position] + replacement + nir[position + 1 :]
    # 97 is prime and never divides d x 10^k (|d| < 10), so every single-digit
    # change either breaks a structural rule or changes the key.
    with pytest.raises(InvalidNIR):
        validate_nir(altered)
