"""Tests for the INS rules: traits, normalisation, statuses and the FR Core representation."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from carnet.identity.ins import (
    INS_NIR_OID,
    INS_TEST_OID,
    Ins,
    InsStatus,
    InvalidTraits,
    Traits,
    apply_to_patient,
    ins_from_patient,
    normalise_name,
    status_for,
    status_from_patient,
    traits_from_patient,
    transmitted_ins,
)
from tests.conftest import CORPUS

FR_CORE = CORPUS / "fr-core"
NIR = "185077505612323"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hélène", "HELENE"),
        ("  françois   xavier ", "FRANCOIS XAVIER"),
        ("Jean - Pierre", "JEAN-PIERRE"),
        ("d’Artagnan", "D'ARTAGNAN"),
        ("O ' Neil", "O'NEIL"),
        ("Martin--Durand", "MARTIN--DURAND"),
        ("Lætitia", "LAETITIA"),
        ("Œdipe", "OEDIPE"),
        ("Çağlar", "CAGLAR"),
        ("-Noël-", "NOEL"),
    ],
)
def test_normalise_name_follows_rniv(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "birth name is empty"),
        (" - ", "birth name is empty"),
        (
            "Dupont2",
            "birth name 'Dupont2' contains '2'; only letters, space, hyphen and apostrophe",
        ),
        ("Du.pont", "contains '.'"),
        ("A---B", "more than two hyphens in a row"),
        ("A''B", "two separators in a row"),
    ],
)
def test_normalise_name_refuses(raw: str, message: str) -> None:
    with pytest.raises(InvalidTraits, match=message.replace("(", r"\(").replace(".", r"\.")):
        normalise_name(raw, field="birth name")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Sørensen", "SORENSEN"),
        ("SØREN", "SOREN"),
        ("Weiß", "WEISS"),
        ("STRAẞE", "STRASSE"),
        ("Łukasz", "LUKASZ"),
        ("Wałęsa", "WALESA"),
        ("Ångström", "ANGSTROM"),
        ("Đorđević", "DORDEVIC"),
        ("Þórður", "THORDUR"),
        ("Guðrún", "GUDRUN"),
        ("Iğdır Yılmaz", "IGDIR YILMAZ"),
        ("Ħamrun", "HAMRUN"),
        ("Ŀlorenç", "LLORENC"),
    ],
)
def test_letters_outside_the_rniv_set_are_transliterated_not_refused(
    raw: str, expected: str
) -> None:
    assert normalise_name(raw) == expected


def test_a_transliterated_name_matches_its_plain_spelling() -> None:
    written = Traits.create("Sørensen", ["Łukasz"], "1985-07-04", "M", "99101")
    plain = Traits.create("SORENSEN", ["LUKASZ"], "1985-07-04", "M", "99101")
    assert written == plain


def test_traits_create_normalises_and_checks() -> None:
    traits = Traits.create("dupont", "jean-marie  paul", "1985-07-14", "male", "75056")
    assert traits == Traits("DUPONT", ("JEAN-MARIE", "PAUL"), date(1985, 7, 14), "M", "75056")
    assert traits.first_given_name == "JEAN-MARIE"
    assert Traits.create("A", ["B"], date(2000, 1, 1), "F", "2a004").birth_place == "2A004"
    assert Traits.create("A", ["B"], date(2000, 1, 1), "F", "").birth_place is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"given_names": []}, "birth first names are empty"),
        ({"birth_date": "1985-02-30"}, "birth date '1985-02-30' is not a YYYY-MM-DD date"),
        ({"birth_date": "2999-01-01"}, "birth date 2999-01-01 is in the future"),
        ({"birth_date": "1700-01-01"}, "birth date 1700-01-01 is before 1850"),
        ({"sex": "unknown"}, "sex is 'unknown', expected M or F"),
        ({"birth_place": "7505"}, "birth place '7505' is not an INSEE code"),
        ({"first_given_name": "Paul"}, "first first name 'PAUL' is not the first"),
    ],
)
def test_traits_create_refuses(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "birth_name": "Dupont",
        "given_names": ["Jean", "Paul"],
        "birth_date": "1985-07-14",
        "sex": "M",
        "birth_place": "75056",
    }
    args.update(kwargs)
    with pytest.raises(InvalidTraits, match=message):
        Traits.create(**args)  # type: ignore[arg-type]


def test_status_needs_both_checks_for_qual() -> None:
    assert status_for(retrieved_from_insi=False, document_checked=False) is InsStatus.PROV
    assert status_for(retrieved_from_insi=True, document_checked=False) is InsStatus.RECUP
    assert status_for(retrieved_from_insi=False, document_checked=True) is InsStatus.VALI
    assert status_for(retrieved_from_insi=True, document_checked=True) is InsStatus.QUAL


def test_ins_is_transmitted_only_for_qual() -> None:
    ins = Ins.create(INS_NIR_OID, NIR)
    assert transmitted_ins(InsStatus.QUAL, ins) == ins
    for status in (InsStatus.PROV, InsStatus.RECUP, InsStatus.VALI):
        assert transmitted_ins(status, ins) is None


def test_ins_create_refuses() -> None:
    with pytest.raises(InvalidTraits, match=re.escape("'urn:oid:1.2.3' is not an INS system")):
        Ins.create("urn:oid:1.2.3", NIR)
    with pytest.raises(InvalidTraits, match="INS INS-NIR: check key is 24, expected 23"):
        Ins.create(INS_NIR_OID, NIR[:-2] + "24")


def test_ins_agrees_with_traits() -> None:
    ins = Ins.create(INS_NIR_OID, NIR)
    traits = Traits.create("DUPONT", ["JEAN"], "1985-07-14", "M", "75056")
    assert ins.agrees_with(traits)
    assert not ins.agrees_with(Traits.create("DUPONT", ["JEAN"], "1985-07-14", "F", "75056"))
    assert not ins.agrees_with(Traits.create("DUPONT", ["JEAN"], "1986-07-14", "M", "75056"))
    assert not ins.agrees_with(Traits.create("DUPONT", ["JEAN"], "1985-08-14", "M", "75056"))


def test_reads_fr_core_examples() -> None:
    martine = json.loads((FR_CORE / "Patient-Martine-Selfiesante.json").read_text())
    traits = traits_from_patient(martine)
    assert traits == Traits("SELFIESANTE", ("MARTINE",), date(1955, 5, 15), "F", "01019")
    assert status_from_patient(martine) is InsStatus.VALI
    # The FR Core example's NIR has a wrong key (and a year/month that disagree with the birth
    # date): it must be refused, not trusted.
    with pytest.raises(InvalidTraits, match="INS INS-NIR: check key is 16, expected 15"):
        ins_from_patient(martine)

    logique = json.loads((FR_CORE / "Patient-avec-INSNIR-logique.json").read_text())
    assert traits_from_patient(logique).birth_place == "65217"
    assert ins_from_patient(logique) == Ins(INS_TEST_OID, "162126587913677")

    nessi = json.loads((FR_CORE / "Patient-MichelAngelo-Nessi.json").read_text())
    assert status_from_patient(nessi) is InsStatus.PROV  # VIDE
    assert ins_from_patient(nessi) is None


def test_patient_without_traits_is_refused() -> None:
    with pytest.raises(InvalidTraits, match="no official name"):
        traits_from_patient({"name": [{"use": "usual", "family": "X"}]})
    with pytest.raises(InvalidTraits, match="no birthDate"):
        traits_from_patient({"name": [{"use": "official", "family": "X", "given": ["Y"]}]})


def test_apply_to_patient_round_trips_and_hides_unqualified_ins() -> None:
    traits = Traits.create("DUPONT", ["JEAN", "PAUL"], "1985-07-14", "M", "75056")
    ins = Ins.create(INS_NIR_OID, NIR)
    base = {"resourceType": "Patient", "name": [{"use": "usual", "family": "X"}]}
    qual = apply_to_patient(base, traits, InsStatus.QUAL, ins)
    assert traits_from_patient(qual) == traits
    assert status_from_patient(qual) is InsStatus.QUAL
    assert ins_from_patient(qual) == ins
    assert qual["name"][1] == {"use": "usual", "family": "X"}
    vali = apply_to_patient(qual, traits, InsStatus.VALI, ins)
    assert ins_from_patient(vali) is None
    assert status_from_patient(vali) is InsStatus.VALI
    assert ins_from_patient(apply_to_patient(base, traits, InsStatus.VALI, ins, outgoing=False))
