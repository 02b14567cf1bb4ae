"""Tests for the French phonetic key, blocking keys and Fellegi-Sunter scoring."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from carnet.identity.blocking import blocking_keys, query_keys
from carnet.identity.matching import MatchModel, identity_model
from carnet.identity.phonetic import phonetic_key

BASE: dict[str, Any] = {
    "birth_name": "DUPONT",
    "given_names": ["JEAN", "PAUL"],
    "birth_date": date(1985, 7, 4),
    "sex": "M",
    "birth_place": "75056",
}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Dupont", "Dupond"),
        ("Dupont", "Du Pont"),
        ("Philippe", "Filipe"),
        ("Gauthier", "Gautier"),
        ("Lefèvre", "Lefevre"),
        ("Schmitt", "Chmit"),
        ("Thomas", "Tomas"),
        ("Rousseau", "Roussot"),
        ("Laurent", "Loran"),
        ("Bernard", "Bernart"),
    ],
)
def test_phonetic_key_groups_french_homophones(a: str, b: str) -> None:
    assert phonetic_key(a) == phonetic_key(b)


@pytest.mark.parametrize(
    ("a", "b"), [("Martin", "Morin"), ("Durand", "Dubois"), ("Paul", "Pierre")]
)
def test_phonetic_key_separates_different_names(a: str, b: str) -> None:
    assert phonetic_key(a) != phonetic_key(b)


def test_phonetic_key_of_nothing_is_empty() -> None:
    assert phonetic_key("") == ""
    assert phonetic_key("--") == ""


def _levels(other: dict[str, Any]) -> dict[str, str | None]:
    score = identity_model().score(BASE, {**BASE, **other})
    return {d.comparison: d.level for d in score.details}


@pytest.mark.parametrize(
    ("change", "comparison", "level"),
    [
        ({}, "family_name", "exact"),
        ({"birth_name": "MARTIN", "used_name": ["DUPONT"]}, "family_name", "exact_other_name"),
        ({"birth_name": "DUPONTT"}, "family_name", "jw_0.94"),
        ({"birth_name": "DUPOND"}, "family_name", "jw_0.88"),
        ({"birth_name": "DUBOIS"}, "family_name", "else"),
        ({"given_names": ["PAUL", "JEAN"]}, "given_names", "same_names_other_order"),
        ({"given_names": ["PAUL"]}, "given_names", "else"),  # twins may share a second name
        ({"given_names": ["LOUIS", "PAUL"]}, "given_names", "else"),
        ({"given_names": ["JAEN"]}, "given_names", "jw_0.88"),
        ({"given_names": ["PIERRE"]}, "given_names", "else"),
        ({"birth_date": date(1985, 4, 7)}, "birth_date", "day_month_swapped"),
        ({"birth_date": date(1986, 7, 4)}, "birth_date", "one_field_differs"),
        ({"birth_date": date(1990, 1, 1)}, "birth_date", "else"),
        ({"sex": "F"}, "sex", "else"),
        ({"birth_place": "75120"}, "birth_place", "same_department"),
        ({"birth_place": "13055"}, "birth_place", "else"),
        ({"birth_place": "99127"}, "birth_place", "else"),
        ({"birth_place": None}, "birth_place", None),
    ],
)
def test_comparison_levels(change: dict[str, Any], comparison: str, level: str | None) -> None:
    assert _levels(change).get(comparison) == level


def test_score_is_explained_and_ordered() -> None:
    model = identity_model()
    same = model.score(BASE, BASE)
    assert same.weight == pytest.approx(same.prior_weight + sum(d.weight for d in same.details))
    assert same.probability > 0.999
    assert [d["comparison"] for d in same.as_dict()["comparisons"]] == [
        "family_name",
        "given_names",
        "birth_date",
        "sex",
        "birth_place",
    ]
    twin = model.score(BASE, {**BASE, "given_names": ["PIERRE"]})
    typo = model.score(BASE, {**BASE, "given_names": ["JAEN", "PAUL"]})
    stranger = model.score(BASE, {**BASE, "birth_name": "MORIN", "birth_date": date(1950, 1, 2)})
    assert same.weight > typo.weight > twin.weight > stranger.weight
    assert stranger.probability < 0.001


def test_model_checks_its_parameters() -> None:
    model = identity_model()
    with pytest.raises(ValueError, match="comparison sex: m/u need 2 values"):
        MatchModel(model.comparisons, {**model.m, "sex": (1.0,)}, model.u, 0.01)
    trained = model.with_parameters(model.m, model.u, 0.5)
    assert trained.prior_weight == 0
    assert trained.parameters()["lambda"] == 0.5


def test_blocking_keys_survive_expected_errors() -> None:
    stored = blocking_keys(BASE)
    assert stored == {
        "d|1985-07-04|M",
        "n|DUPON|1985|M",
        "f|JAN|DUPON",
        "p|75056|JAN|1985",
    }
    errors: list[dict[str, Any]] = [
        {"birth_name": "MARTIN"},
        {"birth_date": date(1985, 4, 7)},
        {"birth_date": date(1958, 7, 4)},
        {"birth_date": date(1985, 4, 7), "birth_name": "DUPOND"},
        {"birth_name": "MARTIN", "birth_date": date(1985, 8, 4)},
    ]
    for change in errors:
        assert stored & query_keys({**BASE, **change}), change
    assert blocking_keys({"birth_name": "X"}) == set()
