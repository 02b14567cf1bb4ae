"""Reading register extracts: every bad row is refused with its number, never its values."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from carnet.identity.ins import INS_NIA_OID, INS_NIR_OID
from carnet.identity.nir import make_nir
from carnet.record.register import RegisterError, read_register
from tests.unit.record.helpers import (
    BABY,
    CLAIRE,
    HEADER,
    ODILE,
    PAUL,
    TODAY,
    family_bundle,
    write_csv,
)


def _fails(path: Path, message: str) -> RegisterError:
    with pytest.raises(RegisterError) as info:
        read_register(path, today=TODAY)
    assert message in str(info.value), str(info.value)
    assert str(info.value).endswith("nothing was provisioned")
    return info.value


def test_csv_with_commas_and_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "NIR,Birth_Name,given_names,birth_date,sex,used_name,guardian_nir,guardian_kind,"
        "guardian_until\n"
        f"{ODILE.nir},Garnier,Odile Marie,1941-09-30,f,Dupré,{PAUL.nir},curator,2031-01-01\n"
        "\n",
        encoding="utf-8",
    )
    [odile] = read_register(path, today=TODAY)
    assert odile.row == 2
    assert odile.ins.system == INS_NIR_OID
    assert odile.traits.given_names == ("ODILE", "MARIE")
    assert odile.traits.birth_place is None
    assert odile.used_name == "DUPRE"
    [link] = odile.representatives
    assert (link.nir, link.kind, link.until) == (PAUL.nir, "curator", date(2031, 1, 1))
    patient = odile.patient()
    assert patient["name"][0] == {
        "use": "official",
        "family": "GARNIER",
        "given": ["ODILE", "MARIE"],
    }
    assert patient["identifier"][0]["value"] == ODILE.nir  # kept although the status is RECUP


def test_nia_numbers(tmp_path: Path) -> None:
    nia = make_nir(8, 1990, 5, "99350", 4)
    row = f"{nia};Benali;Yacine;1990-05-01;M;99350;;;"
    [person] = read_register(write_csv(tmp_path / "r.csv", [row]), today=TODAY)
    assert person.ins.system == INS_NIA_OID


def test_bad_rows_are_reported_with_their_number(tmp_path: Path) -> None:
    err = _fails(
        write_csv(
            tmp_path / "a.csv",
            [PAUL.row(), PAUL.row(), CLAIRE.row().replace("1990-05-03", "1990-13-03")],
        ),
        "row 3: same NIR as row 2",
    )
    assert (
        err.errors[1]
        == "row 4: birth_date is not valid (YYYY-MM-DD, not in the future, not before 1850)"
    )
    assert "(and 1 more)" in str(err)
    _fails(
        write_csv(tmp_path / "b.csv", [CLAIRE.row().replace(";F;", ";M;")]),
        "row 2: the NIR does not agree",
    )
    _fails(
        write_csv(tmp_path / "c.csv", [PAUL.row().replace(";Paul;", ";;")]),
        "row 2: given_names are empty",
    )
    _fails(
        write_csv(tmp_path / "d.csv", [PAUL.row().replace(";M;", ";X;")]),
        "row 2: sex must be M or F",
    )
    _fails(
        write_csv(tmp_path / "e.csv", [PAUL.row().replace(";75056;", ";7505;")]),
        "row 2: birth_place is not",
    )
    _fails(
        write_csv(tmp_path / "f.csv", [PAUL.row(PAUL)]),
        "row 2: a person cannot represent themselves",
    )
    bad_parent = BABY.row(CLAIRE).replace(CLAIRE.nir, "123")
    _fails(write_csv(tmp_path / "g.csv", [bad_parent]), "row 2: invalid NIR in parent_nir")
    guardian = ODILE.row(guardian=PAUL).replace(HEADER, "")
    path = tmp_path / "h.csv"
    path.write_text(HEADER + ";guardian_kind\n" + guardian + ";uncle\n", encoding="utf-8")
    _fails(path, "row 2: guardian_kind must be guardian or curator")
    _fails(write_csv(tmp_path / "i.csv", []), "the file holds no person")
    (tmp_path / "j.csv").write_text("nir;name\n1;2\n", encoding="utf-8")
    _fails(tmp_path / "j.csv", "header: missing column(s) birth_name, given_names, birth_date, sex")
    _fails(tmp_path / "missing.csv", "cannot read missing.csv")


def test_future_birth_and_newborns(tmp_path: Path) -> None:
    born = TODAY + timedelta(days=3)
    unborn = make_nir(1, born.year, born.month, "75056", 9)
    row = f"{unborn};Petit;Jules;{born.isoformat()};M;75056;{CLAIRE.nir};;"
    _fails(write_csv(tmp_path / "a.csv", [CLAIRE.row(), row]), "row 3: birth_date is not valid")
    people = read_register(
        write_csv(tmp_path / "b.csv", [CLAIRE.row(), BABY.row(CLAIRE)]), today=TODAY
    )
    assert [link.kind for link in people[1].representatives] == ["parent"]


def test_bundle(tmp_path: Path) -> None:
    people = read_register(family_bundle(tmp_path / "r.json"), today=TODAY)
    assert [p.row for p in people] == [1, 2, 3]
    assert [link.nir for link in people[1].representatives] == [CLAIRE.nir]
    bundle = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    bundle["entry"][3]["resource"]["relationship"][0]["coding"][0]["code"] = "FRND"
    (tmp_path / "s.json").write_text(json.dumps(bundle), encoding="utf-8")
    err = _fails(tmp_path / "s.json", "entry 2: a newborn needs a parent")
    assert err.errors[1].startswith("entry 4: RelatedPerson.relationship is not parent")
    bundle["entry"][0]["resource"]["identifier"] = []
    bundle["entry"].append({"resource": {"resourceType": "Observation"}})
    (tmp_path / "t.json").write_text(json.dumps(bundle), encoding="utf-8")
    _fails(tmp_path / "t.json", "entry 1: the Patient has no INS identifier")
    (tmp_path / "u.json").write_text('{"resourceType": "Patient"}', encoding="utf-8")
    _fails(tmp_path / "u.json", "the JSON file is not a FHIR Bundle")
    (tmp_path / "v.json").write_text("{not json", encoding="utf-8")
    _fails(tmp_path / "v.json", "neither CSV nor a JSON Bundle")
