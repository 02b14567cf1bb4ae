"""Blind indexes: normalisation and keyed hashes for equality and prefix search."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carnet.crypto.blind_index import PREFIX_MAX, BlindIndexer, normalise

KEY_A = b"a" * 32
KEY_B = b"b" * 32


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Éloïse", "eloise"),
        ("QUINTRANDEAU", "quintrandeau"),
        ("  Jean   Pierre\t\n", "jean pierre"),
        ("Lætitia", "lætitia"),  # æ is a letter of its own, not a decomposable accent
        ("Çà et là", "ca et la"),
        ("Straße", "strasse"),  # casefold, not lower
        ("E\u0301loi\u0308se", "eloise"),  # already decomposed input
        ("ﬁlle", "fille"),  # NFKD unfolds the ligature
        ("", ""),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_normalise_is_idempotent_example() -> None:
    once = normalise(" Hélène  D'Aubigné ")
    assert normalise(once) == once == "helene d'aubigne"


@given(st.text(max_size=40))
def test_normalise_idempotent(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)


def test_digest_shape_and_determinism() -> None:
    blind = BlindIndexer(KEY_A)
    d = blind.digest("x", "dupont")
    assert len(d) == 32
    int(d, 16)  # hex
    assert d == BlindIndexer(KEY_A).digest("x", "dupont")


def test_kinds_are_separated() -> None:
    blind = BlindIndexer(KEY_A)
    assert len({blind.exact_hash("v"), blind.token_hash("v"), blind.digest("p", "v")}) == 3


def test_different_keys_give_different_digests() -> None:
    a, b = BlindIndexer(KEY_A), BlindIndexer(KEY_B)
    for value in ("dupont", "1850775056123", "0612345678"):
        assert a.exact_hash(value) != b.exact_hash(value)
        assert a.token_hash(value) != b.token_hash(value)
        assert a.prefix_query(value) != b.prefix_query(value)
        assert not (a.prefix_hashes(value) & b.prefix_hashes(value))


def test_digest_does_not_contain_value() -> None:
    blind = BlindIndexer(KEY_A)
    assert "dupont" not in blind.exact_hash("dupont")


def test_prefix_hashes_cover_every_prefix_of_any_spelling() -> None:
    blind = BlindIndexer(KEY_A)
    stored = blind.prefix_hashes("Éloïse Quintrandeau")
    norm = normalise("Éloïse Quintrandeau")
    assert len(stored) == min(len(norm), PREFIX_MAX)
    for n in range(1, len(norm) + 1):
        assert blind.prefix_query(norm[:n]) in stored
    # The query side normalises too: case and accents do not matter.
    assert blind.prefix_query("ELO") in stored
    assert blind.prefix_query("éloï") in stored
    assert blind.prefix_query("  Éloïse   Quint") in stored
    assert blind.prefix_query("Elox") not in stored


def test_long_prefix_is_truncated_on_both_sides() -> None:
    blind = BlindIndexer(KEY_A)
    value = "Marie-Christine-Bernadette de la Tour d'Auvergne"
    stored = blind.prefix_hashes(value)
    assert len(stored) == PREFIX_MAX
    # A query longer than PREFIX_MAX still matches (it is truncated the same way).
    assert blind.prefix_query(value) in stored
    assert blind.prefix_query(value[:30]) in stored


@given(st.text(min_size=1, max_size=30))
def test_prefix_query_of_every_prefix_is_in_prefix_hashes(text: str) -> None:
    blind = BlindIndexer(KEY_A)
    stored = blind.prefix_hashes(text)
    norm = normalise(text)
    for n in range(1, len(norm) + 1):
        assert blind.prefix_query(norm[:n]) in stored


def test_empty_value_has_no_prefixes() -> None:
    assert BlindIndexer(KEY_A).prefix_hashes("   ") == set()
