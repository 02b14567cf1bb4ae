"""The medical profile's form parsing (carnet/web/profile/fields.py and the kinds' checks):
French dates at the precision the person knows, decimal comma, bounds, choices, and the body
each kind builds from valid values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from carnet.web.profile.fields import (
    BAD_DATE,
    BAD_NUMBER,
    BAD_PARTIAL_DATE,
    FUTURE,
    OUT_OF_RANGE,
    REQUIRED,
    Field,
    InvalidValueError,
    french_input,
    parse_day,
    parse_decimal,
    read_form,
)
from carnet.web.profile.kinds import KINDS

TODAY = date(2025, 6, 15)


def _message(call: Callable[[], object]) -> str:
    with pytest.raises(InvalidValueError) as refused:
        call()
    return refused.value.message.text


def test_a_decimal_is_read_with_a_comma_or_a_point() -> None:
    assert parse_decimal("72,5") == parse_decimal("72.5") == parse_decimal(" 72,5 ") == 72.5
    assert parse_decimal("1,07") == 1.07
    for wrong in ("soixante", "1,234.5", "1.2.3", "72,", "nan", "inf", "1e3", ""):
        assert _message(lambda w=wrong: parse_decimal(w)) == BAD_NUMBER


def test_a_date_is_read_the_french_way_or_from_a_date_input_and_never_in_the_future() -> None:
    assert parse_day("12/03/2025", today=TODAY) == "2025-03-12"
    assert parse_day("2025-03-12", today=TODAY) == "2025-03-12"
    assert parse_day("1/3/2025", today=TODAY) == "2025-03-01"
    assert _message(lambda: parse_day("31/02/2025", today=TODAY)) == BAD_DATE
    assert _message(lambda: parse_day("03/2025", today=TODAY)) == BAD_DATE  # a day is needed
    assert _message(lambda: parse_day("16/06/2025", today=TODAY)) == FUTURE
    assert _message(lambda: parse_day("01/01/1850", today=TODAY)) == BAD_DATE


def test_a_partial_date_keeps_the_precision_the_person_knows() -> None:
    assert parse_day("03/2015", today=TODAY, partial=True) == "2015-03"
    assert parse_day("2015-03", today=TODAY, partial=True) == "2015-03"
    assert parse_day("2015", today=TODAY, partial=True) == "2015"
    assert parse_day("12/03/2015", today=TODAY, partial=True) == "2015-03-12"
    assert _message(lambda: parse_day("13/2015", today=TODAY, partial=True)) == BAD_PARTIAL_DATE
    assert _message(lambda: parse_day("2026", today=TODAY, partial=True)) == FUTURE
    assert parse_day("06/2025", today=TODAY, partial=True) == "2025-06"  # this month is fine
    assert [french_input(v) for v in ("2015-03-12", "2015-03", "2015")] == [
        "12/03/2015",
        "03/2015",
        "2015",
    ]


def test_a_form_reports_every_field_at_once_and_keeps_what_was_typed() -> None:
    fields = (
        Field("nom", "Nom", required=True),
        Field("age", "Âge", "integer", low=0, high=120),
        Field("choix", "Choix", "select", options=(("a", "A"),)),
        Field("ok", "OK", "checkbox"),
    )
    raw, parsed, errors = read_form(
        fields, {"nom": "  ", "age": "130", "choix": "z", "ok": "1"}, today=TODAY
    )
    assert {name: m.text for name, m in errors.items()} == {
        "nom": REQUIRED,
        "age": OUT_OF_RANGE,
        "choix": "Choisissez une valeur dans la liste.",
    }
    assert errors["age"].params == {"low": 0, "high": 120}
    assert raw["age"] == "130" and parsed["ok"] is True
    raw, parsed, errors = read_form(fields, {"nom": "Luc\x00  Martin", "age": "45"}, today=TODAY)
    assert not errors and parsed == {"nom": "Luc Martin", "age": 45, "choix": None, "ok": False}


def test_a_blood_pressure_needs_both_values_the_higher_first() -> None:
    check = KINDS["mesures"].check
    assert set(check({"mesure": "tension", "systolique": 128.0, "diastolique": None})) == {
        "diastolique"
    }
    assert set(check({"mesure": "tension", "systolique": 80.0, "diastolique": 120.0})) == {
        "systolique"
    }
    assert check({"mesure": "tension", "systolique": 128.0, "diastolique": 82.0}) == {}
    assert set(check({"mesure": "poids", "valeur": 900.0})) == {"valeur"}
    assert set(check({"mesure": "poids", "valeur": None})) == {"valeur"}


def test_each_kind_reads_back_into_its_form_what_it_built() -> None:
    samples = {
        "antecedents": {"libelle": "Asthme", "categorie": "health-concern", "debut": "2015-03",
                        "statut": "resolved"},
        "allergies": {"substance": "Latex", "reaction": "Urticaire", "gravite": "high",
                      "depuis": "2010"},
        "traitements": {"medicament": "Ventoline", "posologie": "2 bouffées", "depuis": "2020"},
        "famille": {"lien": "MTH", "maladie": "Diabète", "age": 55},
        "vaccinations": {"vaccin": "ROR", "date": "2019-03-12", "lot": "AB12"},
        "mesures": {"mesure": "tension", "valeur": None, "systolique": 128.0,
                    "diastolique": 82.0, "date": "2025-03-12"},
        "don-organes": {"position": "partiel", "precisions": "Cornées"},
        "contacts": {"nom": "Luc", "lien": "SPS", "urgence": True, "confiance": False,
                     "telephone": "0612345678", "courriel": None},
        "professionnels": {"nom": "Dr Martin", "profession": "Cardiologue",
                           "rpps": "10000000077", "telephone": None},
    }  # fmt: skip
    for slug, values in samples.items():
        kind = KINDS[slug]
        body = kind.build(values, "p1", "2025-06-15")
        assert kind.matches(body), slug
        back = kind.values_of(body)
        for name, value in values.items():
            expected = {True: "1", False: "", None: ""}.get(value, value)
            if isinstance(value, float):
                expected = f"{value:g}".replace(".", ",")
            elif isinstance(value, int) and not isinstance(value, bool):
                expected = str(value)
            assert back[name] == expected, (slug, name, back[name])


def test_a_relation_the_list_does_not_know_adds_no_empty_label_to_the_line() -> None:
    from carnet.web.templating import translator

    kind = KINDS["contacts"]
    values = {"nom": "Luc", "lien": "SPS", "urgence": True, "confiance": False,
              "telephone": "0612345678", "courriel": None}  # fmt: skip
    body = kind.build(values, "p1", "2025-06-15")
    body["relationship"][0]["coding"][0]["code"] = "NIECE"  # written elsewhere, not in our list
    line = kind.line(body, translator("en"))
    assert line.detail == "Person to contact in an emergency · 0612345678"
