"""Register extracts for the accounts tests: CSV rows and FHIR Bundles of synthetic people."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from carnet.identity.ins import INS_NIR_OID, Ins, InsStatus, Traits, apply_to_patient
from carnet.identity.nir import make_nir

TODAY = date.today()
HEADER = "nir;birth_name;given_names;birth_date;sex;birth_place;parent_nir;guardian_nir;objection"


@dataclass(frozen=True)
class Person:
    birth_name: str
    given: str
    birth: date
    sex: str
    place: str = "75056"
    order: int = 1

    @property
    def nir(self) -> str:
        digit = 1 if self.sex == "M" else 2
        return make_nir(digit, self.birth.year, self.birth.month, self.place, self.order)

    def row(
        self,
        parent: Person | None = None,
        *,
        guardian: Person | None = None,
        objection: bool = False,
    ) -> str:
        return ";".join(
            [
                self.nir,
                self.birth_name,
                self.given,
                self.birth.isoformat(),
                self.sex,
                self.place,
                parent.nir if parent else "",
                guardian.nir if guardian else "",
                "oui" if objection else "",
            ]
        )

    def patient(self) -> dict[str, Any]:
        traits = Traits.create(self.birth_name, self.given, self.birth, self.sex, self.place)
        ins = Ins(INS_NIR_OID, self.nir)
        return apply_to_patient(
            {"resourceType": "Patient"}, traits, InsStatus.RECUP, ins, outgoing=False
        )


CLAIRE = Person("Lefebvre", "Claire Anne", date(1990, 5, 3), "F", order=12)
PAUL = Person("Lefebvre", "Paul", date(1988, 2, 11), "M", order=44)
BABY = Person("Lefebvre", "Léo", TODAY - timedelta(days=60), "M", order=301)
TEEN = Person("Moreau", "Inès", date(TODAY.year - 17, 1, 15), "F", "69123", order=77)
ODILE = Person("Garnier", "Odile", date(1941, 9, 30), "F", "13055", order=5)


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def family_csv(path: Path) -> Path:
    """Two parents, their newborn (parent column), and an adult under guardianship by Paul."""
    return write_csv(
        path,
        [CLAIRE.row(), BABY.row(CLAIRE), PAUL.row(), ODILE.row(guardian=PAUL)],
    )


def family_bundle(path: Path) -> Path:
    """The same family as a Bundle: Patients, and a RelatedPerson naming the newborn's mother."""
    entries: list[dict[str, Any]] = []
    for index, person in enumerate((CLAIRE, BABY, PAUL)):
        entries.append({"fullUrl": f"urn:uuid:p{index}", "resource": person.patient()})
    entries.append(
        {
            "fullUrl": "urn:uuid:r1",
            "resource": {
                "resourceType": "RelatedPerson",
                "patient": {"reference": "urn:uuid:p1"},
                "identifier": [{"system": INS_NIR_OID, "value": CLAIRE.nir}],
                "relationship": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                "code": "MTH",
                            }
                        ]
                    }
                ],
            },
        }
    )
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path
